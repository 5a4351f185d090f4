"""Which failures are retried, how long the gateway waits, and when it gives up."""

import time

import pytest

from optimizer.llm import gateway
from tests.optimizer.llm.conftest import add_model, builtin, make_request
from tests.support import free_port

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_retryable_statuses_are_tried_again(openai_model, fake, status):
    fake.enqueue({"status": status})

    result = gateway.call(make_request(), builtin=builtin, model=openai_model)

    assert not result.builtin and result.skipped == []
    assert len(fake.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_never_retried(openai_model, fake, status):
    fake.enqueue({"status": status, "headers": {"x-should-retry": "true"}})

    result = gateway.call(make_request(), builtin=builtin, model=openai_model)

    assert len(fake.requests) == 1
    assert result.builtin
    assert (result.skipped[0].reason, result.skipped[0].status) == ("error", status)


def test_three_attempts_at_most(openai_model, fake):
    fake.enqueue({"status": 500}, {"status": 500}, {"status": 500}, "ok")

    result = gateway.call(make_request(), builtin=builtin, model=openai_model)

    assert len(fake.requests) == 3
    assert result.builtin and result.skipped[0].status == 500


def test_retry_after_seconds_is_honoured(openai_model, fake):
    fake.enqueue({"status": 429, "retry_after": 1})

    started = time.monotonic()
    result = gateway.call(make_request(), builtin=builtin, model=openai_model)

    assert not result.builtin
    assert time.monotonic() - started >= 1.0  # our own backoff here would be 10 ms


def test_retry_after_ms_is_honoured(openai_model, fake):
    fake.enqueue({"status": 503, "headers": {"retry-after-ms": "300"}})

    started = time.monotonic()
    gateway.call(make_request(), builtin=builtin, model=openai_model)

    assert time.monotonic() - started >= 0.3


def test_a_retry_after_beyond_a_minute_fails_over_instead_of_waiting(openai_model, fake):
    fake.enqueue({"status": 429, "retry_after": 3600})

    started = time.monotonic()
    result = gateway.call(make_request(), builtin=builtin, model=openai_model)

    assert len(fake.requests) == 1 and result.builtin
    assert time.monotonic() - started < 30


def test_x_should_retry_false_is_respected(openai_model, fake):
    fake.enqueue({"status": 503, "headers": {"x-should-retry": "false"}})

    result = gateway.call(make_request(), builtin=builtin, model=openai_model)

    assert len(fake.requests) == 1 and result.builtin


def test_connection_errors_are_retried_then_fail_over(db):
    nowhere = add_model(f"http://127.0.0.1:{free_port()}/v1", name="Nowhere")

    result = gateway.call(make_request(), builtin=builtin, model=nowhere)

    assert result.builtin
    assert result.skipped[0].error_class == "ConnectError"


def test_a_provider_that_hangs_is_asked_once_and_fails_over(db, fake):
    hanging = add_model(fake.url, name="Hangs", read_timeout_s=0.3)
    fake.enqueue("hang", "hang", "hang")

    result = gateway.call(make_request(), builtin=builtin, model=hanging)

    assert result.builtin
    assert result.skipped[0].error_class == "ReadTimeout"
    assert len(fake.requests) == 1  # asking a hung provider again would hold the worker as long again


def test_the_first_byte_timeout_setting_caps_every_providers_read_timeout(db, fake, settings):
    settings.LLM_FIRST_BYTE_TIMEOUT_S = 1
    patient = add_model(fake.url, name="Patient", read_timeout_s=60)
    fake.enqueue("hang")

    started = time.monotonic()
    result = gateway.call(make_request(), builtin=builtin, model=patient)

    assert result.builtin and result.skipped[0].error_class == "ReadTimeout"
    assert time.monotonic() - started < 5


def test_the_call_deadline_comes_from_the_settings(settings):
    settings.LLM_RETRY = {}
    settings.LLM_CALL_DEADLINE_S = 42
    assert gateway.retry_settings()["deadline_s"] == 42.0


def test_a_provider_that_trickles_its_answer_is_cut_off_at_the_calls_deadline(db, fake, settings):
    settings.LLM_RETRY = {**settings.LLM_RETRY, "deadline_s": 1.5}
    slow = add_model(fake.url, name="Trickles", read_timeout_s=5)  # each byte comes well within it
    fake.enqueue("trickle")

    started = time.monotonic()
    result = gateway.call(make_request(), builtin=builtin, model=slow)

    assert result.builtin and result.skipped[0].error_class == "ReadTimeout"
    assert time.monotonic() - started < 4  # not the minutes the whole answer would take
    assert len(fake.requests) == 1
