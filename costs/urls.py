from django.urls import path

from optimizer.views import coming_soon

app_name = "costs"

urlpatterns = [
    path(
        "",
        coming_soon("Costs", "What every model call cost, daily and monthly budgets, forecasts and export."),
        name="dashboard",
    ),
]
