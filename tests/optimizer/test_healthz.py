"""/healthz: public, JSON, 200 when the database, cache and broker answer, 503 naming what failed."""

import pytest
from django.db import connection
from django.urls import reverse

from tests.support import free_port

UNREACHABLE_REDIS_CACHE = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:{port}/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
    }
}


@pytest.mark.django_db
def test_healthz_is_public_and_reports_every_service(client):
    response = client.get(reverse("optimizer:healthz"))

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert "no-cache" in response.headers["Cache-Control"]
    body = response.json()
    assert body["status"] == "ok"
    assert body["failed"] == []
    assert set(body["checks"]) == {"database", "cache", "task_broker"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["database"]["vendor"] == connection.vendor


@pytest.mark.django_db
def test_healthz_answers_head_requests_for_load_balancers(client):
    assert client.head(reverse("optimizer:healthz")).status_code == 200


@pytest.mark.django_db
def test_healthz_is_503_and_names_the_cache_when_it_is_unreachable(client, settings):
    settings.CACHES = {
        "default": {
            **UNREACHABLE_REDIS_CACHE["default"],
            "LOCATION": UNREACHABLE_REDIS_CACHE["default"]["LOCATION"].format(port=free_port()),
        }
    }

    response = client.get(reverse("optimizer:healthz"))

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert "cache" in body["failed"]
    assert body["checks"]["cache"]["ok"] is False
    assert body["checks"]["cache"]["error"]  # the error's class name, nothing more
    assert "127.0.0.1" not in response.content.decode()
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db(transaction=True)
def test_healthz_is_503_and_names_the_database_when_it_is_unreachable(client, tmp_path):
    original = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = str(tmp_path / "missing-folder" / "db.sqlite3")
    else:
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(free_port()))
    try:
        response = client.get(reverse("optimizer:healthz"))
    finally:
        connection.close()
        connection.settings_dict.update(original)

    assert response.status_code == 503
    body = response.json()
    assert "database" in body["failed"]
    assert body["checks"]["database"]["ok"] is False
    assert str(tmp_path) not in response.content.decode()
