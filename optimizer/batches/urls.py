"""The Batch pages, under /batch/ in the optimizer's namespace (``optimizer:batch`` is the list and
the New batch form, the navigation's link)."""

from django.urls import path

from optimizer.batches import views

urlpatterns = [
    path("", views.batch_index, name="batch"),
    path("<int:pk>/", views.batch_detail, name="batch-detail"),
    path("<int:pk>/start/", views.batch_start, name="batch-start"),
    path("<int:pk>/cancel/", views.batch_cancel, name="batch-cancel"),
    path("<int:pk>/resume/", views.batch_resume, name="batch-resume"),
    path("<int:pk>/retry-failed/", views.batch_retry_failed, name="batch-retry-failed"),
    path("<int:pk>/delete/", views.batch_delete, name="batch-delete"),
    path("<int:pk>/export.csv", views.batch_export, {"fmt": "csv"}, name="batch-export-csv"),
    path("<int:pk>/export.json", views.batch_export, {"fmt": "json"}, name="batch-export-json"),
]
