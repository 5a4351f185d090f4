"""The Analytics page and its charts' JSON views, under /analytics/ in the optimizer's namespace
(``optimizer:analytics`` is the page, the navigation's link)."""

from django.urls import path

from optimizer.analytics import views

urlpatterns = [
    path("", views.analytics, name="analytics"),
    path("charts/<slug:name>/", views.AnalyticsChart.as_view(), name="analytics-chart"),
]
