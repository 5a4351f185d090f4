from django.urls import path

from optimizer.views import coming_soon

app_name = "backups"

urlpatterns = [
    path("", coming_soon("Backups", "Scheduled backups of your data, and restore."), name="index"),
]
