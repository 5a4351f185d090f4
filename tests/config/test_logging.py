"""Log lines as the LOGGING setting writes them (plain and LOG_FORMAT=json), and what an error report
to Sentry may hold."""

import json
import logging
import subprocess
import sys

from config.error_reporting import FILTERED, configured_secrets, scrub_event
from tests.support import PROJECT_ROOT, clean_env

A_REQUEST = """
import django
django.setup()
from django.test import Client
Client(HTTP_HOST="localhost").get("/healthz?token=hunter2-query", headers={"X-Request-ID": "proxy-id-0001"})
"""


def run_python(code: str, tmp_path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={
            **clean_env(DATA_DIR=str(tmp_path), SECRET_KEY="k" * 50, **env),
            "DJANGO_SETTINGS_MODULE": "config.settings",
        },
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_json_lines_carry_the_request_id_and_the_access_fields(tmp_path):
    completed = run_python(A_REQUEST, tmp_path, LOG_FORMAT="json")
    assert completed.returncode == 0, completed.stderr

    lines = [json.loads(line) for line in completed.stderr.splitlines() if line.startswith("{")]
    (access,) = [line for line in lines if line["logger"] == "access"]
    assert access["level"] == "INFO"
    assert access["request_id"] == "proxy-id-0001"
    assert access["method"] == "GET" and access["path"] == "/healthz"
    assert access["status"] in (200, 503)  # the scratch database has no tables: /healthz may say so
    assert isinstance(access["duration_ms"], float) and access["time"].endswith("+00:00")
    assert "hunter2" not in completed.stderr  # the query string is never logged
    assert all(line["request_id"] for line in lines)


def test_plain_lines_name_the_request_id(tmp_path):
    completed = run_python(A_REQUEST, tmp_path)
    assert completed.returncode == 0, completed.stderr
    (access,) = [line for line in completed.stderr.splitlines() if " access " in line]
    assert " INFO access [proxy-id-0001]: GET /healthz " in access
    assert access.endswith("ms")


def test_a_log_format_we_do_not_know_stops_the_start(tmp_path):
    completed = run_python("import django; django.setup()", tmp_path, LOG_FORMAT="xml")
    assert completed.returncode != 0 and "LOG_FORMAT" in completed.stderr


def test_a_sentry_dsn_that_is_not_one_stops_the_start_with_what_to_do(tmp_path):
    completed = run_python("import django; django.setup()", tmp_path, SENTRY_DSN="not a dsn")
    assert completed.returncode != 0
    assert "SENTRY_DSN is not a Sentry DSN" in completed.stderr and "Client Keys" in completed.stderr


def test_a_valid_sentry_dsn_starts_reporting(tmp_path):
    code = "import django; django.setup(); import sentry_sdk; print(sentry_sdk.get_client().is_active())"
    completed = run_python(code, tmp_path, SENTRY_DSN="https://public@o0.ingest.sentry.io/0")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "True"


# --- The Sentry scrubber ------------------------------------------------------------------------

PROMPT = "You are my secret marketing plan: launch on the 4th"
API_KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"


def an_event() -> dict:
    """An event shaped like sentry-sdk's for an exception in a view, holding everything it must not."""
    return {
        "level": "error",
        "exception": {
            "values": [
                {
                    "type": "ValueError",
                    "value": f"provider refused key {API_KEY}",
                    "stacktrace": {
                        "frames": [
                            {"function": "optimize", "lineno": 12, "vars": {"text": PROMPT, "key": API_KEY}},
                        ]
                    },
                }
            ]
        },
        "request": {
            "url": "https://po.example.com/runs/12/?q=launch+plan",
            "method": "POST",
            "query_string": "q=launch+plan",
            "data": {"text": PROMPT, "csrfmiddlewaretoken": "abc"},
            "cookies": {"sessionid": "s3ss10n"},
            "headers": {
                "Authorization": "Bearer metrics-token-0123456789",
                "Cookie": "sessionid=s3ss10n",
                "User-Agent": "Firefox",
            },
        },
        "extra": {"prompt": PROMPT, "run_id": 12, "messages": [{"role": "user", "content": PROMPT}]},
        "breadcrumbs": {
            "values": [
                {"category": "query", "message": "SELECT 1", "data": {"params": [PROMPT]}},
                {"category": "httpx", "message": f"POST with Authorization: Bearer {API_KEY}"},
            ]
        },
    }


def test_the_scrubber_takes_out_prompts_bodies_and_keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "an-openai-key-without-the-usual-shape")
    event = an_event()
    event["exception"]["values"][0]["value"] += " (an-openai-key-without-the-usual-shape)"

    scrubbed = scrub_event(event, {})

    sent = json.dumps(scrubbed)
    assert PROMPT not in sent and "launch" not in sent
    assert API_KEY not in sent and "an-openai-key" not in sent and "metrics-token" not in sent
    assert "s3ss10n" not in sent
    request = scrubbed["request"]
    assert set(request) == {"url", "method", "headers"}
    assert request["url"] == "https://po.example.com/runs/12/"
    assert request["headers"] == {"Authorization": FILTERED, "Cookie": FILTERED, "User-Agent": "Firefox"}
    frame = scrubbed["exception"]["values"][0]["stacktrace"]["frames"][0]
    assert frame["vars"] == {} and frame["function"] == "optimize"
    assert scrubbed["exception"]["values"][0]["value"].startswith("provider refused key [Filtered]")
    assert scrubbed["extra"] == {"prompt": FILTERED, "run_id": 12, "messages": []}
    assert scrubbed["breadcrumbs"]["values"][0] == {"category": "query", "message": "SELECT 1", "data": {}}
    assert scrubbed["level"] == "error"  # what is not private is kept


def test_the_secrets_looked_for_are_the_configured_ones(monkeypatch):
    environ = {
        "OPENAI_API_KEY": "k-openai-123456",
        "SECRET_KEY": "s" * 50,
        "METRICS_TOKEN": "m" * 40,
        "HOME": "/root",
        "SHORT_KEY": "abc",
    }
    assert configured_secrets(environ) == ["s" * 50, "m" * 40, "k-openai-123456"]


def test_a_line_break_in_a_path_cannot_forge_a_second_access_line(client, caplog):
    with caplog.at_level(logging.INFO, logger="access"):
        client.get("/nothing%0A2099-01-01 00:00:00,000 INFO access: POST /admin/ 200 1.0ms%0D")

    (line,) = [record.getMessage() for record in caplog.records if record.name == "access"]
    assert "\n" not in line and "\r" not in line
    assert "/nothing\\x0a2099-01-01" in line and "\\x0d" in line
