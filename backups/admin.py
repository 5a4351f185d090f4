from django.contrib import admin

from backups.models import Backup


@admin.register(Backup)
class BackupAdmin(admin.ModelAdmin):
    """A record of what was backed up: read-only (backups are made, restored and rotated by command,
    the schedule and the Backups page, which keep each record and its file together)."""

    list_display = [
        "name", "status", "trigger", "place", "encrypted", "size", "started_at", "duration_ms", "created_by",
    ]  # fmt: skip
    list_filter = ["status", "trigger", "place", "encrypted", "started_at"]
    search_fields = ["name", "note"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
