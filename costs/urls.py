from django.urls import path

from costs import views
from optimizer.views import coming_soon

app_name = "costs"

urlpatterns = [
    path(
        "",
        coming_soon("Costs", "What every model call cost, daily and monthly budgets, forecasts and export."),
        name="dashboard",
    ),
    path("alerts/<int:pk>/dismiss/", views.alert_dismiss, name="alert-dismiss"),
]
