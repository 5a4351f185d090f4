from django.urls import path

from optimizer.monitoring import api

app_name = "api"

urlpatterns = [
    path("health", api.health, name="health"),
    path("stats/performance", api.stats_performance, name="stats-performance"),
    path("stats/cache", api.stats_cache, name="stats-cache"),
    path("cache/clear", api.cache_clear, name="cache-clear"),
    path("system", api.system, name="system"),
]
