from django.urls import path

from costs import views

app_name = "costs"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("usage.csv", views.usage_export, name="usage-export"),
    path("usage-mine.csv", views.usage_export_mine, name="usage-export-mine"),
    path("charts/spend-per-day/", views.SpendPerDayChart.as_view(), name="chart-spend-per-day"),
    path("charts/tokens-per-day/", views.TokensPerDayChart.as_view(), name="chart-tokens-per-day"),
    path("charts/by-model/", views.SpendByChart.as_view(group="model"), name="chart-by-model"),
    path("charts/by-provider/", views.SpendByChart.as_view(group="provider"), name="chart-by-provider"),
    path("charts/by-operation/", views.SpendByChart.as_view(group="operation"), name="chart-by-operation"),
    path("alerts/<int:pk>/dismiss/", views.alert_dismiss, name="alert-dismiss"),
]
