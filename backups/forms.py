from django import forms
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.template.defaultfilters import filesizeformat

# What the page takes; a larger backup is copied to the server and restored with manage.py restore.
MAX_UPLOAD_BYTES = 1024**3
CONFIRM_WORD = "RESTORE"


class BackupNowForm(forms.Form):
    note = forms.CharField(
        label="Note",
        max_length=200,
        required=False,
        help_text="Optional: why this backup (the list shows it).",
    )


class UploadLimit(FileUploadHandler):
    """Stops reading an upload once it passes ``MAX_UPLOAD_BYTES``: the rest of the request is read
    and dropped (so the page can still answer with the reason), never written to disk."""

    def __init__(self, request=None):
        super().__init__(request)
        self.received = 0
        self.exceeded = False

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > MAX_UPLOAD_BYTES:
            self.exceeded = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handler (Django's) makes the file


def too_large_message() -> str:
    return (
        f"The file is larger than the {filesizeformat(MAX_UPLOAD_BYTES)} this page takes. Copy it to the "
        "server and run manage.py restore PATH there. Nothing was uploaded."
    )


class BackupUploadForm(forms.Form):
    file = forms.FileField(
        label="Backup file",
        help_text=f"A backup made by this site, encrypted or not, up to {filesizeformat(MAX_UPLOAD_BYTES)}.",
        error_messages={
            "required": "Choose a backup file to upload.",
            "empty": "That file is empty: choose the backup file itself.",
        },
    )

    def __init__(self, *args, limit: UploadLimit | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.limit = limit

    def clean(self):
        if self.limit is not None and self.limit.exceeded:
            self.errors.pop("file", None)  # "required": the file was dropped, the real reason is its size
            raise forms.ValidationError(too_large_message())
        return super().clean()


class RestoreConfirmForm(forms.Form):
    confirm = forms.CharField(
        label=f"Type {CONFIRM_WORD} to replace the data", max_length=20, strip=True,
        error_messages={"required": f"Type {CONFIRM_WORD} to confirm. Nothing was changed."},
    )  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["confirm"].widget.attrs.update(autocomplete="off", spellcheck="false")

    def clean_confirm(self):
        if self.cleaned_data["confirm"] != CONFIRM_WORD:
            raise forms.ValidationError(f"Type {CONFIRM_WORD} in capitals to confirm. Nothing was changed.")
        return self.cleaned_data["confirm"]
