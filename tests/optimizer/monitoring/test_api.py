"""The JSON endpoints under /api/v1/: health (public, 200 or 503), the stats and the system report
(staff; a JSON 404 for anyone else), and clearing a cache tier (staff, POST, CSRF)."""

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from optimizer.caching import analysis_key, analysis_set, cached
from optimizer.monitoring import api
from tests.optimizer.monitoring.factories import RunFactory, UsageRecordFactory, WorkerHeartbeatFactory
from tests.support import free_port

pytestmark = pytest.mark.django_db
STAFF_ONLY = ["api:stats-performance", "api:stats-cache", "api:system"]


@pytest.fixture(autouse=True)
def _clean_cache():
    caches["default"].clear()
    yield
    caches["default"].clear()


def both_clusters_beating(**fields):
    for cluster in (settings.Q_CLUSTER["name"], settings.FAST_QUEUE):
        WorkerHeartbeatFactory(cluster=cluster, **fields)


def test_health_is_200_when_every_component_answers(client, settings):
    settings.MONITORING_MAX_DISK_PCT = 100
    both_clusters_beating()
    answer = client.get(reverse("api:health"))  # no session: a load balancer has none
    report = answer.json()
    assert answer.status_code == 200 and report["status"] == "ok" and report["failed"] == []
    assert set(report["components"]) == {"database", "cache", "broker", "workers", "disk"}
    assert all(component["ok"] for component in report["components"].values())
    assert report["components"]["workers"]["alive"] == {settings.Q_CLUSTER["name"]: 1, settings.FAST_QUEUE: 1}


def test_health_is_503_without_a_live_worker_or_with_a_full_disk(client, settings):
    settings.MONITORING_MAX_DISK_PCT = 100
    both_clusters_beating(beat_at=timezone.now() - dt.timedelta(minutes=5))
    answer = client.get(reverse("api:health"))
    assert answer.status_code == 503 and answer.json()["failed"] == ["workers"]
    assert "no live worker" in answer.json()["components"]["workers"]["error"]

    both_clusters_beating()
    settings.MONITORING_MAX_DISK_PCT = 1  # any disk in use is fuller than 1%
    answer = client.get(reverse("api:health"))
    assert answer.status_code == 503 and answer.json()["failed"] == ["disk"]


@pytest.mark.parametrize("name", STAFF_ONLY)
def test_stats_and_system_are_for_staff_only(owner_client, client, name):
    assert owner_client.get(reverse(name)).status_code == 404
    assert owner_client.get(reverse(name)).json() == {"error": "Not found."}
    assert client.get(reverse(name)).status_code in (302, 404)  # no session: the login page


def test_stats_performance_holds_the_page_figures(staff_client):
    RunFactory(duration_ms=2500)
    UsageRecordFactory(latency_ms=700, cost=Decimal("0.003"))
    data = staff_client.get(reverse("api:stats-performance")).json()
    assert data["optimizations"]["hour"]["p50_ms"] == 2500
    [row] = data["model_calls"]
    assert (row["p95_ms"], Decimal(row["cost_last_hour"])) == (700, Decimal("0.003"))
    assert {"queue", "machine", "alerts", "thresholds"} <= set(data) and "caches" not in data


def test_stats_cache_per_tier(staff_client):
    UsageRecordFactory(status="cache_hit", cost=0, saved_cost=Decimal("0.002"))
    UsageRecordFactory(status="ok")
    tiers = {tier["tier"]: tier for tier in staff_client.get(reverse("api:stats-cache")).json()["tiers"]}
    assert tiers["api"]["hits"] == 1 and tiers["api"]["hit_rate_pct"] == 50.0
    assert Decimal(tiers["api"]["saved_cost"]) == Decimal("0.002")


def test_cache_clear_is_a_staff_post_with_the_csrf_token(staff_user, owner):
    key = analysis_key("Explain tides.", "general", "llm", owner_id=1)
    analysis_set(key, {"x": 1})
    url = reverse("api:cache-clear")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff_user)
    assert browser.post(url, {"tier": "analysis"}).status_code == 403  # no token: refused
    assert cached(key) is not None
    browser.get(reverse("optimizer:monitoring"))
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value
    answer = browser.post(url, {"tier": "analysis"}, headers={"X-CSRFToken": token})
    assert answer.status_code == 200 and answer.json() == {"tier": "analysis", "deleted": 1}
    assert cached(key) is None

    wrong = browser.post(url, {"tier": "everything"}, headers={"X-CSRFToken": token})
    assert wrong.status_code == 400 and "choose one of api, analysis, result" in wrong.json()["error"]
    assert browser.get(url).status_code == 405
    other = Client()
    other.force_login(owner)
    assert other.post(url, {"tier": "analysis"}).status_code == 404


def test_system_masks_every_secret(staff_client, settings):
    settings.DATABASE_URL = "postgresql://app:hunter2@db.internal:5432/po"
    settings.REDIS_URL = "redis://:s3cret@cache.internal:6379/0"
    settings.METRICS_TOKEN = "token-value-never-shown"
    answer = staff_client.get(reverse("api:system"))
    text = answer.content.decode()
    for secret in ("hunter2", "s3cret", "token-value-never-shown", settings.SECRET_KEY):
        assert secret not in text
    data = json.loads(text)
    config = data["configuration"]
    assert config["DATABASE_URL"] == "postgresql://app:********@db.internal:5432/po"
    assert config["REDIS_URL"] == "redis://:********@cache.internal:6379/0"
    assert config["SECRET_KEY"] == "********" and config["METRICS_TOKEN"] == "********"
    assert data["versions"]["django"] and data["versions"]["python"]
    assert data["uptime"]["process_uptime_s"] >= 0


def test_masked_url_leaves_urls_without_a_password_alone():
    assert api.masked_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert api.masked_url("postgresql://postgres@127.0.0.1/db") == "postgresql://postgres@127.0.0.1/db"
    assert api.masked_url(None) is None


@pytest.mark.django_db
def test_clearing_a_tier_while_redis_is_away_says_so_and_changes_nothing(staff_client):
    away = {
        **settings.CACHES,
        "default": {
            "BACKEND": "config.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        },
    }
    with override_settings(CACHES=away):
        answer = staff_client.post(reverse("api:cache-clear"), {"tier": "result"})
        page = staff_client.post(reverse("optimizer:monitoring-cache-clear", args=["result"]), follow=True)

    assert answer.status_code == 503 and "nothing was cleared" in answer.json()["error"]
    assert page.status_code == 200 and "nothing was cleared" in page.content.decode()
