from django.conf import settings
from django.db import models


class Backup(models.Model):
    """One backup: where its file is, what it holds and how making it went."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        COMMAND = "command", "Command"
        SCHEDULE = "schedule", "Schedule"
        PAGE = "page", "Page"
        SAFETY = "safety", "Safety (before a restore)"
        UPLOAD = "upload", "Upload"

    class Place(models.TextChoices):
        FOLDER = "folder", "Backup folder"
        STORAGE = "storage", "Backup storage"

    name = models.CharField(
        max_length=255, help_text="The file's path, or its name in the backup storage (STORAGES['backups'])."
    )
    place = models.CharField(
        max_length=10, choices=Place, default=Place.FOLDER, help_text="Where the file is kept."
    )
    encrypted = models.BooleanField(default=False, help_text="Encrypted with BACKUP_ENCRYPTION_KEY.")
    size = models.PositiveBigIntegerField(default=0, help_text="Bytes.")
    sha256 = models.CharField(max_length=64, blank=True, help_text="Of the whole file.")
    counts = models.JSONField(default=dict, blank=True, help_text="Rows per model.")
    status = models.CharField(max_length=10, choices=Status, default=Status.RUNNING)
    trigger = models.CharField(max_length=10, choices=Trigger, default=Trigger.COMMAND)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return self.name
