"""The New batch form: prompts pasted or uploaded, and the settings they share, validated as the
Optimize form validates its own (the same fields, choices and checks: it is a subclass of it)."""

from django import forms
from django.conf import settings

from optimizer.batches.parsing import TEXT_HOW_TO, BatchInputError, Parsed, parse_file, parse_text
from optimizer.batches.selectors import ITEM_STATES, SORTS
from optimizer.forms import OptimizeForm
from optimizer.models import Batch

NAME_MAX = Batch._meta.get_field("name").max_length
SORT_LABELS = {
    "row": "In their order",
    "-row": "Last first",
    "gain": "Largest checklist gain",
    "-gain": "Smallest checklist gain",
    "cost": "Most expensive",
    "status": "By status",
    "title": "By title",
}
FILE_HELP = (
    "CSV, JSON, JSON Lines or plain text, UTF-8. A CSV's first line names its columns: “prompt” "
    "(required), and “title”, “type” and “tags” if you like (tags separated by commas); other columns are "
    'ignored. A JSON file is an array of prompts or of objects such as {"prompt": "...", "title": "..."}; '
    "JSON Lines, one of those a line."
)


class BatchForm(OptimizeForm):
    """Exactly one of ``text`` and ``file``; a valid form holds the parsed input in
    ``cleaned_data["parsed"]`` and where it came from in ``cleaned_data["source"]``."""

    text = forms.CharField(
        label="Prompts",
        strip=False,
        required=False,
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false"}),
        help_text=f"{TEXT_HOW_TO} Up to 2.5 MB pasted; upload a file for more.",
    )
    file = forms.FileField(label="Or upload a file", required=False, help_text=FILE_HELP)
    name = forms.CharField(
        label="Name",
        required=False,
        max_length=NAME_MAX,
        help_text="Optional; the file's name and the date else.",
    )
    # The single prompt's fields that a batch has per row, or not at all.
    title = None
    tags = None
    parent = None

    field_order = ["text", "file", "type", "model", "preset", "techniques", "keep_spans", "name"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["type"].help_text = "For the rows that name no type: a row's own type wins."

    def clean_text(self) -> str:
        return (self.cleaned_data.get("text") or "").replace("\r\n", "\n")

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        limit = settings.BATCH_MAX_BYTES
        if upload is not None and upload.size > limit:  # told before reading it: it may be on disk, huge
            raise forms.ValidationError(
                f"The file is {upload.size:,} bytes; the limit is {limit:,} bytes "
                f"({limit / 1024**2:.1f} MiB, BATCH_MAX_BYTES). Split it into smaller batches."
            )
        return upload

    def clean(self):
        cleaned = super().clean()
        text, upload = cleaned.get("text", ""), cleaned.get("file")
        if "file" in self.errors or "text" in self.errors:
            return cleaned
        if upload is not None and text.strip():
            self.add_error(
                None, "Paste prompts or upload a file, not both: empty the text box or remove the file."
            )
        elif upload is None and not text.strip():
            self.add_error("text", f"There is nothing to optimize. {TEXT_HOW_TO} Or upload a file.")
        else:
            try:
                cleaned["parsed"], cleaned["source"] = self._parsed(text, upload)
            except BatchInputError as error:
                self.add_error("file" if upload is not None else "text", str(error))
        return cleaned

    @staticmethod
    def _parsed(text: str, upload) -> tuple[Parsed, str]:
        if upload is None:
            return parse_text(text), "pasted text"
        data = b"".join(upload.chunks())
        return parse_file(upload.name, data), upload.name


class ItemFilterForm(forms.Form):
    """The results table's filters; a value it does not know is dropped (the default shown), never a 500."""

    state = forms.ChoiceField(
        label="Status", required=False, choices=[("", "Any status"), *ITEM_STATES.items()]
    )
    q = forms.CharField(label="Search", required=False, max_length=200)
    sort = forms.ChoiceField(
        label="Sort", required=False, choices=[(key, SORT_LABELS.get(key, key)) for key in SORTS]
    )

    def values(self) -> dict[str, str]:
        """state, q and sort: each one submitted if it is valid, else its default."""
        self.is_valid()
        cleaned = getattr(self, "cleaned_data", {})
        return {
            "state": cleaned.get("state") or "",
            "q": (cleaned.get("q") or "").strip(),
            "sort": cleaned.get("sort") or "row",
        }
