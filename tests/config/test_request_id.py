"""Every response carries X-Request-ID and Server-Timing; the id is on every log line of its request
and travels into the task the request queued."""

import logging
import re

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from django.urls import reverse
from django_q.brokers import get_broker
from django_q.signing import SignedPackage

from config.log_filters import RequestIdFilter
from config.request_context import NO_REQUEST, request_id_get, request_id_reset, request_id_set
from optimizer import runqueue, services, tasks
from optimizer.models import OptimizationRun

SERVER_TIMING = re.compile(r"db;dur=(\d+\.\d), total;dur=(\d+\.\d)")


@pytest.fixture
def request_ids(caplog):
    """The request id of every record logged at INFO and above while the test runs."""
    caplog.handler.addFilter(RequestIdFilter())
    caplog.set_level(logging.INFO)
    return caplog


def test_a_request_without_an_id_gets_a_new_one_each_time(client):
    first = client.get(reverse("login"))["X-Request-ID"]
    second = client.get(reverse("login"))["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and re.fullmatch(r"[0-9a-f]{32}", second)
    assert first != second


@pytest.mark.parametrize(
    "sent", ["9f1c2e4a-5b6d-4e7f-8a9b-0c1d2e3f4a5b", "Root=1-67891233-abcdef012345678912345678", "a1b2c3d4"]
)
def test_a_valid_id_from_the_proxy_is_kept(client, sent):
    assert client.get(reverse("login"), headers={"X-Request-ID": sent})["X-Request-ID"] == sent


@pytest.mark.parametrize(
    "sent",
    [
        "short",
        "x" * 129,
        "two words here",
        "evil\nINFO forged line",
        "id;with;semicolons",
        "ünïcode-id-123",
        "",
    ],
)
def test_an_invalid_id_is_replaced_not_echoed(client, sent):
    answered = client.get(reverse("login"), headers={"X-Request-ID": sent})["X-Request-ID"]
    assert answered != sent and re.fullmatch(r"[0-9a-f]{32}", answered)


def test_server_timing_gives_the_database_time_within_the_total(staff_client):
    timing = SERVER_TIMING.fullmatch(staff_client.get(reverse("optimizer:history"))["Server-Timing"])
    database_ms, total_ms = float(timing[1]), float(timing[2])
    assert 0 < database_ms <= total_ms  # the history page reads the database

    static_like = SERVER_TIMING.fullmatch(staff_client.get(reverse("metrics"))["Server-Timing"])
    assert static_like is not None


def test_every_response_carries_both_headers_a_404_and_a_redirect_too(client, owner):
    for response in (client.get("/no-such-page/"), client.get(reverse("optimizer:history"))):
        assert response.status_code in (302, 404)
        assert response["X-Request-ID"] and SERVER_TIMING.fullmatch(response["Server-Timing"])


def test_one_access_line_per_request_with_the_request_id_and_no_query_string(staff_client, request_ids):
    response = staff_client.get(reverse("optimizer:history"), {"q": "my secret prompt"})

    access = [record for record in request_ids.records if record.name == "access"]
    assert len(access) == 1
    line = access[0]
    assert line.getMessage().startswith("GET /history/ 200 ")
    assert (line.method, line.path, line.status) == ("GET", "/history/", 200)
    assert line.duration_ms >= 0
    assert line.request_id == response["X-Request-ID"]
    assert "secret" not in line.getMessage()
    assert request_id_get() == NO_REQUEST  # the id does not outlive its request


def test_the_token_of_a_password_reset_link_is_not_logged(client, request_ids, owner):
    client.get(f"/password/reset/MQ/{'c' * 20}-{'d' * 32}/")
    (access,) = [record for record in request_ids.records if record.name == "access"]
    assert access.path == "/password/reset/<uidb64>/<token>/"
    assert "d" * 32 not in access.getMessage()


def test_every_line_a_request_logs_carries_its_id(staff_client, request_ids, owner):
    # A request that logs a line of its own: an unknown run is a 404, which Django's request logger
    # writes after the middleware has answered.
    response = staff_client.get("/runs/999999/")
    lines = [record for record in request_ids.records if record.name in ("django.request", "access")]
    assert {record.name for record in lines} == {"django.request", "access"}
    assert {record.request_id for record in lines} == {response["X-Request-ID"]}


# --- Into the task ------------------------------------------------------------------------------


@pytest.fixture
def fast_broker(db):
    caches["default"].clear()
    broker = get_broker(django_settings.FAST_QUEUE)
    broker.purge_queue()
    yield broker
    broker.purge_queue()


def test_the_task_a_request_queues_runs_under_the_request_id(fast_broker, owner, caplog):
    run = services.run_submit(
        owner=owner,
        text="Explain tides to a child.",
        run_settings=services.run_settings_build(
            prompt_type="general", preset="auto", techniques=[], model="builtin", keep_spans=True
        ),
        enqueue=False,
    )
    token = request_id_set("req-0123456789abcdef")
    try:
        assert runqueue.enqueue(OptimizationRun.Engine.BUILTIN) == 1
    finally:
        request_id_reset(token)
    ((_ack, payload),) = fast_broker.dequeue()
    task = SignedPackage.loads(payload)
    assert task["kwargs"] == {"request_id": "req-0123456789abcdef"}

    # What the worker does with it: every line the task logs (its statements, here) carries the id.
    caplog.handler.addFilter(RequestIdFilter())
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection):  # Django logs statements only while they are captured
        tasks.run_next_task(*task["args"], **task["kwargs"])
    statements = [record for record in caplog.records if record.name == "django.db.backends"]
    assert statements and {record.request_id for record in statements} == {"req-0123456789abcdef"}
    assert OptimizationRun.objects.get(pk=run.pk).status == OptimizationRun.Status.DONE
    assert request_id_get() == NO_REQUEST


def test_a_token_queued_outside_any_request_carries_no_id(fast_broker):
    runqueue.enqueue(OptimizationRun.Engine.BUILTIN)
    ((_ack, payload),) = fast_broker.dequeue()
    assert SignedPackage.loads(payload)["kwargs"] == {}
