import datetime as dt
import re

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.html import format_html, format_html_join

from optimizer.batches.parsing import TAG_MAX_CHARS, TAGS_MAX
from optimizer.builtin_engine.catalogue import PRESETS, TECHNIQUES
from optimizer.models import ModelChoice, OptimizationRun, Prompt

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
PRESET_CHOICES = [("auto", "Auto: techniques picked from the diagnosis")] + [
    (slug, f"{name}: {description}") for slug, (name, description, _) in PRESETS.items()
] + [("none", "None: only the techniques ticked below")]  # fmt: skip
TECHNIQUE_CHOICES = [(slug, technique.name) for slug, technique in TECHNIQUES.items()]
TITLE_MAX = Prompt._meta.get_field("title").max_length


# Choices given as functions: a form copies its fields for every request, and copying a function is
# free where copying these lists took a sizeable part of a cache-hit request.
def preset_choices() -> list[tuple[str, str]]:
    return PRESET_CHOICES


def technique_choices() -> list[tuple[str, str]]:
    return TECHNIQUE_CHOICES


def model_choices() -> list[tuple[str, str]]:
    models = ModelChoice.objects.usable()
    return [
        ("auto", "Auto: the cheapest model that suits each stage" if models else "Auto"),
        ("builtin", "Built-in engine (no API key, no cost)"),
        *[(str(choice.pk), f"{choice.provider.name} / {choice.model_id}") for choice in models],
    ]


def prompt_text_validate(text: str) -> str:
    """The checks every door applies to a prompt (form, command): a clear message for each."""
    limit = settings.PROMPT_MAX_CHARS
    if not text.strip():
        raise forms.ValidationError("Paste a prompt to optimize: this one is empty.", code="empty")
    if len(text) > limit:
        raise forms.ValidationError(
            f"This prompt is {len(text):,} characters long; the limit is {limit:,}. Shorten it, or raise "
            "PROMPT_MAX_CHARS.",
            code="too_long",
        )
    _refuse_control_characters(text, "prompt")
    return text.replace("\r\n", "\n")


def again_text(run: OptimizationRun) -> tuple[str, str]:
    """The text a new version of ``run`` starts from, and what it is: the run's result, or the prompt
    where the author kept their original or the run has no result."""
    if run.status == OptimizationRun.Status.DONE and run.optimized_text and not run.kept_original:
        return run.optimized_text, "result"
    return run.prompt.text, "prompt"


class OptimizeForm(forms.Form):
    text = forms.CharField(
        label="Prompt",
        strip=False,
        required=False,  # the empty case gets our own message, below
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false", "autofocus": True}),
    )
    type = forms.ChoiceField(label="Type", choices=Prompt.Type.choices, initial=Prompt.Type.GENERAL)
    preset = forms.ChoiceField(label="Preset", choices=preset_choices, initial="auto")
    techniques = forms.MultipleChoiceField(
        label="Techniques",
        required=False,
        choices=technique_choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Added to the preset's (or to Auto's) choice.",
    )
    model = forms.CharField(label="Model", initial="auto", widget=forms.Select)
    keep_spans = forms.BooleanField(
        label="Keep placeholders, quoted text, numbers, URLs and code exactly as written",
        required=False,
        initial=True,
    )
    title = forms.CharField(
        label="Title", required=False, max_length=TITLE_MAX, help_text="Optional; for your history."
    )
    tags = forms.CharField(
        label="Tags", required=False, max_length=300, help_text="Optional, separated by commas."
    )
    # "Optimize again with…": the version this submission continues, so it joins that run's versions.
    parent = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, owner=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner

    @classmethod
    def again_with(cls, run: OptimizationRun, *, owner) -> "OptimizeForm":
        """The form filled with a run's text (its result, or the original where the author kept it, or
        where it has no result) and its settings, to change and submit as a new version of it."""
        run_settings = run.settings or {}
        title = run.prompt.title.removesuffix(" (again)")
        return cls(
            owner=owner,
            initial={
                "text": again_text(run)[0],
                "type": run_settings.get("type", run.prompt.type),
                "preset": run_settings.get("preset", "auto"),
                "techniques": run_settings.get("techniques", []),
                "model": run_settings.get("model", "auto"),
                "keep_spans": run_settings.get("keep_spans", True),
                "title": f"{title[: TITLE_MAX - len(' (again)')]} (again)",
                "tags": ", ".join(run.prompt.tags),
                "parent": run.pk,
            },
        )

    def with_model_choices(self) -> "OptimizeForm":
        """Load the model menu: only drawing the form needs it, not validating a submission."""
        self.fields["model"].widget.choices = model_choices()
        return self

    def clean_model(self) -> str:
        """ "auto", "builtin", or the id of an enabled model: looked up only in that last case."""
        value = self.cleaned_data["model"]
        if value in ("auto", "builtin"):
            return value
        if value.isdigit() and ModelChoice.objects.usable().filter(pk=value).exists():
            return value
        raise forms.ValidationError("Select a valid choice: that model is not enabled. Pick another.")

    def clean_text(self) -> str:
        return prompt_text_validate(self.cleaned_data.get("text") or "")

    def clean_parent(self) -> OptimizationRun | None:
        """The owner's run this continues; another user's or a deleted one is refused alike."""
        pk = self.cleaned_data.get("parent")
        if pk is None:
            return None
        run = OptimizationRun.objects.filter(pk=pk, owner=self.owner).first() if self.owner else None
        if run is None:
            raise forms.ValidationError(  # the form is drawn again without it: a new submission is new
                "The version this was to continue has been deleted. Press Optimize again to save it as a new "
                "prompt."
            )
        return run

    def clean_tags(self) -> list[str]:
        tags = [tag.strip() for tag in self.cleaned_data["tags"].split(",") if tag.strip()]
        if len(tags) > TAGS_MAX or any(len(tag) > TAG_MAX_CHARS for tag in tags):
            raise forms.ValidationError(
                f"Use at most {TAGS_MAX} tags of at most {TAG_MAX_CHARS} characters each."
            )
        return list(dict.fromkeys(tags))

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("preset") == "none" and not cleaned.get("techniques"):
            self.add_error("techniques", "Tick at least one technique, or choose Auto or a preset.")
        return cleaned


ANSWER_MAX_CHARS = 500


def answer_text_validate(text: str) -> str:
    """The checks every door applies to an answer to a clarifying question (page, command)."""
    if len(text) > ANSWER_MAX_CHARS:
        raise forms.ValidationError(
            f"This answer is {len(text):,} characters long; the limit is {ANSWER_MAX_CHARS}. Say it in "
            "fewer words: the answer goes into the prompt.",
            code="too_long",
        )
    _refuse_control_characters(text, "answer")
    return text.strip()


def _refuse_control_characters(text: str, what: str) -> None:
    if match := CONTROL.search(text):
        raise forms.ValidationError(
            f"The {what} contains a control character (U+{ord(match.group()):04X}) at position "
            f"{match.start() + 1:,}. Remove it (it often comes from copying out of a terminal or PDF).",
            code="control",
        )


def _attributes(attrs: dict) -> str:
    """A widget's attributes as ``django/forms/widgets/attrs.html`` writes them: ``True`` bare,
    ``False`` left out, any other value as its string, escaped."""
    return format_html_join(
        "",
        " {}{}",
        (
            (name, "" if value is True else format_html('="{}"', value))
            for name, value in attrs.items()
            if value is not False
        ),
    )


class DrawnTextInput(forms.TextInput):
    """A text input drawn by Python, byte for byte as Django's templates draw it: on the run page,
    which every optimization answers with, the two widgets' five nested templates were a quarter of
    the page's rendering (test: the same HTML as Django's widget)."""

    def render(self, name, value, attrs=None, renderer=None):
        widget = self.get_context(name, value, attrs)["widget"]
        shown = "" if widget["value"] is None else format_html(' value="{}"', widget["value"])
        return format_html(
            '<input type="{}" name="{}"{}{}>',
            widget["type"],
            widget["name"],
            shown,
            _attributes(widget["attrs"]),
        )


class DrawnTextarea(forms.Textarea):
    """A textarea drawn by Python, byte for byte as Django's template draws it (see DrawnTextInput)."""

    def render(self, name, value, attrs=None, renderer=None):
        widget = self.get_context(name, value, attrs)["widget"]
        return format_html(
            '<textarea name="{}"{}>\n{}</textarea>',
            widget["name"],
            _attributes(widget["attrs"]),
            widget["value"] or "",
        )


class AnswerForm(forms.Form):
    """One text input per open question of a run, named ``answer-<key>``; a submission must answer at
    least one and name no question the run does not have."""

    prefix = "answer"
    max_chars = ANSWER_MAX_CHARS  # said beside the inputs; no maxlength, which would cut a paste silently

    def __init__(self, questions: list[dict], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.questions = questions
        for question in questions:
            self.fields[question["key"]] = forms.CharField(
                label=question["question"],
                required=False,
                strip=False,
                widget=DrawnTextInput(
                    attrs={
                        "autocomplete": "off",
                        "aria-describedby": f"id_{self.add_prefix(question['key'])}-why",
                    }
                ),
                validators=[answer_text_validate],
            )

    def clean(self):
        cleaned = super().clean()
        start = f"{self.prefix}-"
        unknown = [name[len(start) :] for name in self.data if name.startswith(start)]
        unknown = [key for key in unknown if key not in self.fields]
        if unknown:
            raise forms.ValidationError(
                f"“{unknown[0]}” is not one of this optimization's questions. Reload the page and answer "
                "the questions it shows."
            )
        if not self.errors and not any(value.strip() for value in cleaned.values()):
            raise forms.ValidationError("Answer at least one question before optimizing again.")
        return cleaned

    def answers(self) -> dict[str, str]:
        """The non-empty answers, stripped, by question key."""
        return {key: value.strip() for key, value in self.cleaned_data.items() if value.strip()}

    def rows(self) -> list[tuple[dict, forms.BoundField]]:
        """Each question beside its input, for the template."""
        return [(question, self[question["key"]]) for question in self.questions]


class RunEditForm(forms.Form):
    """The author's own version of a run's text, saved as a new version of the run."""

    prefix = "edit"
    text = forms.CharField(
        label="Your version",
        strip=False,
        required=False,  # the empty case gets the prompt's own message
        widget=DrawnTextarea(attrs={"rows": 12, "spellcheck": "false"}),
    )

    def clean_text(self) -> str:
        return prompt_text_validate(self.cleaned_data.get("text") or "")


FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(2999, 12, 31)
DAY_OUT_OF_RANGE = f"Enter a date from {FIRST_DAY} to {LAST_DAY}."


class DayField(forms.DateField):
    """A calendar day for a filter or a range, far enough from years 1 and 9999 that the range's
    arithmetic (the day after, a month before, local midnight turned into UTC) stays within what
    Python's dates and the database can hold."""

    default_error_messages = {"invalid": "Enter the dates as YYYY-MM-DD."}

    def __init__(self, **kwargs):
        limits = {"type": "date", "min": FIRST_DAY.isoformat(), "max": LAST_DAY.isoformat()}
        kwargs.setdefault("widget", forms.DateInput(attrs=limits))
        validators = [
            MinValueValidator(FIRST_DAY, DAY_OUT_OF_RANGE),
            MaxValueValidator(LAST_DAY, DAY_OUT_OF_RANGE),
        ]
        super().__init__(validators=validators, **kwargs)


def errors_text(form: forms.Form) -> str:
    """All of a form's error messages in one line, each once: the text of a 400 or of a page's message."""
    return " ".join(dict.fromkeys(message for messages in form.errors.values() for message in messages))


class HistoryFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=200)
    type = forms.ChoiceField(label="Type", required=False, choices=[("", "Any type"), *Prompt.Type.choices])
    engine = forms.ChoiceField(
        label="Engine", required=False, choices=[("", "Any engine"), *OptimizationRun.Engine.choices]
    )
    date_from = DayField(label="From", required=False)
    date_to = DayField(label="To", required=False)
    favorite = forms.BooleanField(label="Favorites only", required=False)
    min_gain = forms.IntegerField(label="Min. checklist gain", required=False, min_value=-100, max_value=100)
    sort = forms.ChoiceField(
        label="Sort",
        required=False,
        choices=[
            ("newest", "Newest first"),
            ("oldest", "Oldest first"),
            ("gain", "Largest checklist gain"),
            ("score", "Highest checklist score"),
            ("cost", "Most expensive"),
        ],
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("date_from") and cleaned.get("date_to") and cleaned["date_from"] > cleaned["date_to"]:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned
