from django.urls import path

from backups import views

app_name = "backups"

urlpatterns = [
    path("", views.index, name="index"),
    path("now/", views.backup_now, name="now"),
    path("now/<str:token>/", views.backup_progress, name="progress"),
    path("upload/", views.upload, name="upload"),
    path("<int:pk>/download/", views.download, name="download"),
    path("<int:pk>/restore/", views.restore, name="restore"),
]
