from django.urls import include, path

from optimizer import views

app_name = "optimizer"

urlpatterns = [
    path("", views.optimize, name="optimize"),
    path("healthz", views.healthz, name="healthz"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
    path("runs/<int:pk>/progress/", views.run_progress, name="run-progress"),
    path("runs/<int:pk>/diff/", views.run_diff, name="run-diff"),
    path("runs/<int:pk>/reoptimize/", views.run_reoptimize, name="run-reoptimize"),
    path("runs/<int:pk>/answer/", views.run_answer, name="run-answer"),
    path("runs/<int:pk>/edit/", views.run_edit, name="run-edit"),
    path("runs/<int:pk>/keep-original/", views.run_keep_original, name="run-keep-original"),
    path("runs/<int:pk>/favorite/", views.run_favorite, name="run-favorite"),
    path("runs/<int:pk>/delete/", views.run_delete, name="run-delete"),
    path("history/", views.history, name="history"),
    path("history/export.json", views.history_export, {"fmt": "json"}, name="history-export-json"),
    path("history/export.csv", views.history_export, {"fmt": "csv"}, name="history-export-csv"),
    path("batch/", include("optimizer.batches.urls")),
    path("monitoring/", include("optimizer.monitoring.urls")),
    path("analytics/", include("optimizer.analytics.urls")),
]
