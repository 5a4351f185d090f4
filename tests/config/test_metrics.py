"""/metrics: who may read it, and the figures it shows, parsed with prometheus-client's own parser."""

import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import caches
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from backups.models import Backup
from config.metrics import child_exit, multiprocess_dir_prepare
from costs.models import Budget, UsageRecord
from optimizer import services
from optimizer.llm.breaker import CircuitBreaker
from optimizer.models import ModelChoice, OptimizationRun, Provider, WorkerHeartbeat
from tests.support import PROJECT_ROOT, clean_env

TOKEN = "metrics-token-for-tests-only-0123456789"
SETTINGS = "config.settings"


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get(reverse("metrics"), headers=headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture(autouse=True)
def _clean_cache(db):
    caches["default"].clear()  # the breakers' state


# --- Who may read it ----------------------------------------------------------------------------


def test_without_a_token_only_staff_may_read_the_metrics(client, owner, staff_user, settings):
    settings.METRICS_TOKEN = None
    anonymous = client.get(reverse("metrics"))
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("login"))
    assert client.get(reverse("metrics"), headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 302
    client.force_login(owner)
    assert client.get(reverse("metrics")).status_code == 404
    client.force_login(staff_user)
    assert "prompt_optimizer_http_requests_total" in {name for name, _ in scrape(client)}


def test_a_token_outside_ascii_is_refused_not_a_server_error(client, settings):
    settings.METRICS_TOKEN = TOKEN
    assert client.get(reverse("metrics"), headers={"Authorization": "Bearer café"}).status_code == 401


def test_a_made_up_http_method_adds_no_series(client, staff_client):
    for n in range(5):
        client.generic(f"M{n:04d}X", "/healthz")
    samples = scrape(staff_client)

    methods = {
        dict(labels).get("method")
        for name, labels in samples
        if name == "prompt_optimizer_http_requests_total"
    }
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "other" in methods


def test_with_a_token_the_bearer_of_it_or_staff_may_read_them(client, owner, staff_user, settings):
    settings.METRICS_TOKEN = TOKEN
    refused = client.get(reverse("metrics"))
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert b"prompt_optimizer" not in refused.content
    for wrong in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer "):
        assert client.get(reverse("metrics"), headers={"Authorization": wrong}).status_code == 401
    client.force_login(owner)  # a session that is not staff is no token
    assert client.get(reverse("metrics")).status_code == 401
    client.logout()
    assert scrape(client, Authorization=f"Bearer {TOKEN}")
    client.force_login(staff_user)
    assert scrape(client)


def test_a_short_metrics_token_stops_the_start(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={
            **clean_env(DATA_DIR=str(tmp_path), METRICS_TOKEN="short"),
            "DJANGO_SETTINGS_MODULE": SETTINGS,
        },
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode != 0
    assert "METRICS_TOKEN must be at least 32 characters" in completed.stderr


# --- What it shows ------------------------------------------------------------------------------


def usage(user, status="ok", cost="0.25", provider="OpenAI", model="gpt-5-mini", ago=timedelta(0), **fields):
    record = UsageRecord.objects.create(
        user=user, provider=provider, model=model, operation="design", status=status,
        cost=None if cost is None else Decimal(cost), latency_ms=100, **fields,
    )  # fmt: skip
    if ago:
        UsageRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - ago)
    return record


def test_model_calls_and_cost_by_provider_model_and_status(staff_client, owner):
    usage(owner)
    usage(owner, cost="0.50")
    usage(owner, status="error", cost=None, error_class="HTTPStatusError")
    usage(owner, status="cache_hit", cost="0", saved_cost=Decimal("0.25"))
    usage(owner, model="gpt-5", cost="1.00", ago=timedelta(days=40))

    samples = scrape(staff_client)

    calls, cost = "prompt_optimizer_model_calls_last_day", "prompt_optimizer_model_cost_usd_last_day"
    assert value(samples, calls, provider="OpenAI", model="gpt-5-mini", status="ok") == 2
    assert value(samples, calls, provider="OpenAI", model="gpt-5-mini", status="error") == 1
    assert value(samples, calls, provider="OpenAI", model="gpt-5-mini", status="cache_hit") == 1
    assert value(samples, calls, provider="OpenAI", model="gpt-5", status="ok") is None  # 40 days ago
    assert value(samples, cost, provider="OpenAI", model="gpt-5-mini", status="ok") == pytest.approx(0.75)
    assert value(samples, cost, provider="OpenAI", model="gpt-5-mini", status="error") == 0
    # The API cache over the last hour: one hit in four lookups (the 40-day-old call is outside).
    assert value(samples, "prompt_optimizer_cache_lookups_last_hour", tier="api") == 4
    assert value(samples, "prompt_optimizer_cache_hit_ratio_last_hour", tier="api") == pytest.approx(0.25)
    assert value(samples, "prompt_optimizer_metrics_section_up", section="model_calls") == 1


def test_breaker_state_of_each_enabled_model(staff_client):
    provider = Provider.objects.create(
        name="OpenAI", kind="openai", base_url="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY"
    )
    failing = ModelChoice.objects.create(provider=provider, model_id="gpt-5-mini", tier="balanced")
    ModelChoice.objects.create(provider=provider, model_id="gpt-5", tier="best")
    ModelChoice.objects.create(provider=provider, model_id="gpt-4o", tier="fast", enabled=False)
    breaker = CircuitBreaker(failing.breaker_key)
    while not breaker.record_failure(breaker.allow()):
        pass

    samples = scrape(staff_client)

    assert value(samples, "prompt_optimizer_breaker_state", provider="OpenAI", model="gpt-5-mini") == 2
    assert value(samples, "prompt_optimizer_breaker_state", provider="OpenAI", model="gpt-5") == 0
    assert value(samples, "prompt_optimizer_breaker_state", provider="OpenAI", model="gpt-4o") is None


def queued_run(owner, ago_s=0, engine_model="builtin"):
    run = services.run_submit(
        owner=owner,
        text="Explain tides to a child.",
        run_settings=services.run_settings_build(
            prompt_type="general", preset="auto", techniques=[], model=engine_model, keep_spans=True
        ),
        enqueue=False,
    )
    if ago_s:
        OptimizationRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(seconds=ago_s))
    return run


def test_queue_depth_age_and_live_workers(staff_client, owner, settings):
    queued_run(owner, ago_s=120)
    queued_run(owner, ago_s=5)
    running = queued_run(owner)
    OptimizationRun.objects.filter(pk=running.pk).update(status=OptimizationRun.Status.RUNNING)
    now = timezone.now()
    for name, cluster, beat_ago in (("h:1", settings.FAST_QUEUE, 3), ("h:2", settings.FAST_QUEUE, 600)):
        WorkerHeartbeat.objects.create(
            name=name, cluster=cluster, host="h", pid=int(name[2:]), started_at=now - timedelta(hours=1),
            beat_at=now - timedelta(seconds=beat_ago),
        )  # fmt: skip

    samples = scrape(staff_client)

    fast, models = settings.FAST_QUEUE, settings.Q_CLUSTER["name"]
    assert value(samples, "prompt_optimizer_runs_queued", queue=fast) == 2
    assert value(samples, "prompt_optimizer_runs_running", queue=fast) == 1
    assert value(samples, "prompt_optimizer_runs_queued", queue=models) == 0
    assert 120 <= value(samples, "prompt_optimizer_runs_queued_oldest_age_seconds", queue=fast) < 180
    assert value(samples, "prompt_optimizer_runs_queued_oldest_age_seconds", queue=models) == 0
    assert value(samples, "prompt_optimizer_broker_tasks", queue=fast) is not None
    assert value(samples, "prompt_optimizer_workers_alive", cluster=fast) == 1  # the other is silent
    assert value(samples, "prompt_optimizer_workers_alive", cluster=models) == 0


def test_result_and_analysis_cache_hit_ratios(staff_client, owner):
    done = OptimizationRun.Status.DONE
    for cached, analysis_cached in ((True, False), (False, True), (False, False), (False, False)):
        run = queued_run(owner)
        OptimizationRun.objects.filter(pk=run.pk).update(
            status=done, cached=cached, analysis_cached=analysis_cached
        )

    samples = scrape(staff_client)

    assert value(samples, "prompt_optimizer_cache_lookups_last_hour", tier="result") == 4
    assert value(samples, "prompt_optimizer_cache_hit_ratio_last_hour", tier="result") == pytest.approx(0.25)
    assert value(samples, "prompt_optimizer_cache_lookups_last_hour", tier="analysis") == 3
    assert value(samples, "prompt_optimizer_cache_hit_ratio_last_hour", tier="analysis") == pytest.approx(
        1 / 3
    )
    assert value(samples, "prompt_optimizer_cache_lookups_last_hour", tier="api") == 0
    assert value(samples, "prompt_optimizer_cache_hit_ratio_last_hour", tier="api") is None  # no lookup


def test_spend_today_and_this_month_against_each_budget(staff_client, owner):
    usage(owner, cost="0.40")
    usage(None, cost="0.10")
    site = Budget.objects.create(period=Budget.Period.DAILY, limit=Decimal("2"))
    mine = Budget.objects.create(user=owner, period=Budget.Period.MONTHLY, limit=Decimal("5"), mode="hard")

    samples = scrape(staff_client)

    assert value(samples, "prompt_optimizer_spend_usd", period="day") == pytest.approx(0.5)
    assert value(samples, "prompt_optimizer_spend_usd", period="month") == pytest.approx(0.5)
    site_labels = {"budget": str(site.pk), "owner": "site", "period": "daily", "mode": "soft"}
    mine_labels = {"budget": str(mine.pk), "owner": owner.username, "period": "monthly", "mode": "hard"}
    assert value(samples, "prompt_optimizer_budget_spend_usd", **site_labels) == pytest.approx(0.5)
    assert value(samples, "prompt_optimizer_budget_limit_usd", **site_labels) == 2
    assert value(samples, "prompt_optimizer_budget_spend_usd", **mine_labels) == pytest.approx(0.4)
    assert value(samples, "prompt_optimizer_budget_limit_usd", **mine_labels) == 5


def test_backup_age_appears_once_a_backup_was_made(staff_client):
    assert value(scrape(staff_client), "prompt_optimizer_backup_age_seconds") is None
    backup = Backup.objects.create(name="/srv/backups/backup-1.zip", status=Backup.Status.DONE)
    Backup.objects.filter(pk=backup.pk).update(started_at=timezone.now() - timedelta(hours=2))
    Backup.objects.create(name="/srv/backups/uploaded.zip", status=Backup.Status.DONE, trigger="upload")

    age = value(scrape(staff_client), "prompt_optimizer_backup_age_seconds")

    assert 7200 <= age < 7300


def test_requests_and_database_statements_are_counted(staff_client):
    before = scrape(staff_client)
    staff_client.get(reverse("optimizer:history"))
    after = scrape(staff_client)

    def total(samples, name):
        return sum(v for (sample, _), v in samples.items() if sample == name)

    assert (
        total(after, "prompt_optimizer_http_requests_total")
        >= total(before, "prompt_optimizer_http_requests_total") + 2
    )  # the history page and the scrape before
    assert total(after, "prompt_optimizer_db_statements_total") > total(
        before, "prompt_optimizer_db_statements_total"
    )
    assert total(after, "prompt_optimizer_db_statement_duration_seconds_count") > 0


def test_the_scrape_costs_the_same_queries_however_many_records(
    staff_client, owner, django_assert_max_num_queries
):
    usage(owner)
    with django_assert_max_num_queries(40) as few:
        scrape(staff_client)
    for n in range(30):
        usage(owner, model=f"m{n % 3}", status="ok" if n % 2 else "error")
    with django_assert_max_num_queries(len(few.captured_queries)):
        scrape(staff_client)


# --- gunicorn's processes add up ----------------------------------------------------------------

ONE_REQUEST = """
import django
django.setup()
from django.test import Client
Client(HTTP_HOST="localhost").get("/healthz")
"""
SCRAPE = """
import django
django.setup()
from prometheus_client import generate_latest
from optimizer.metrics import _process_metrics
print(generate_latest(_process_metrics()).decode())
"""


def test_in_multiprocess_mode_the_processes_requests_add_up(tmp_path):
    metrics_dir = multiprocess_dir_prepare(tmp_path / "prometheus")
    env = {
        **clean_env(DATA_DIR=str(tmp_path / "data"), SECRET_KEY="k" * 50, LOG_LEVEL="WARNING"),
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }

    def python(code):
        return subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
            timeout=60, check=True,
        ).stdout  # fmt: skip

    python(ONE_REQUEST)
    python(ONE_REQUEST)
    families = {family.name: family for family in text_string_to_metric_families(python(SCRAPE))}

    requests = families["prompt_optimizer_http_requests"].samples
    assert sum(sample.value for sample in requests if sample.labels["method"] == "GET") == 2
    assert len(list(metrics_dir.iterdir())) >= 2  # one file per process and kind of metric


def test_serve_starts_with_an_empty_metrics_folder_and_a_dead_worker_leaves_no_live_gauge(tmp_path):
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"from a previous run")
    assert list(multiprocess_dir_prepare(folder).iterdir()) == []

    (folder / "gauge_livesum_4242.db").write_bytes(b"")
    (folder / "counter_4242.db").write_bytes(b"")

    class GunicornWorker:  # what gunicorn hands the hook: only its pid is read
        pid = 4242

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    try:
        child_exit(None, GunicornWorker())
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    assert sorted(path.name for path in folder.iterdir()) == ["counter_4242.db"]
