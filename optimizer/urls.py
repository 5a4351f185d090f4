from django.urls import path

from optimizer import views

app_name = "optimizer"

urlpatterns = [
    path("", views.optimize, name="optimize"),
    path("healthz", views.healthz, name="healthz"),
    path(
        "history/",
        views.coming_soon(
            "History", "Every optimization you run, searchable and filterable, with versions and export."
        ),
        name="history",
    ),
    path(
        "batch/", views.coming_soon("Batch", "Optimize many prompts at once from a CSV file."), name="batch"
    ),
    path(
        "monitoring/",
        views.coming_soon(
            "Monitoring", "Provider health, circuit breakers, cache hit rates and the task queue."
        ),
        name="monitoring",
    ),
    path(
        "analytics/",
        views.coming_soon("Analytics", "How much your prompts improve, by type, technique and model."),
        name="analytics",
    ),
]
