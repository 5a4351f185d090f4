from django.urls import path

from optimizer.monitoring import views

urlpatterns = [
    path("", views.monitoring, name="monitoring"),
    path("export.json", views.monitoring_export, name="monitoring-export"),
    path("breakers/<int:pk>/reset/", views.breaker_reset, name="monitoring-breaker-reset"),
    path("caches/<slug:tier>/clear/", views.cache_clear, name="monitoring-cache-clear"),
]
