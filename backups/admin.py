from django.contrib import admin

from backups.models import Backup


@admin.register(Backup)
class BackupAdmin(admin.ModelAdmin):
    """A record of what was backed up: read-only (backups are made and restored by command)."""

    list_display = ["name", "status", "trigger", "size", "started_at", "duration_ms", "created_by"]
    list_filter = ["status", "trigger", "started_at"]
    search_fields = ["name", "note"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
