"""The thresholds: a setting of the same name wins, the environment is read strictly, and a figure
past its threshold fills the banner."""

import subprocess
import sys

import pytest
from django.urls import reverse

from optimizer.monitoring import thresholds
from tests.optimizer.monitoring.factories import UsageRecordFactory
from tests.support import PROJECT_ROOT, clean_env


def test_defaults_and_a_setting_of_the_same_name(settings):
    assert thresholds.current() == thresholds.Thresholds(
        error_rate_pct=10, p95_ms=30_000, queue_age_s=120, disk_pct=90
    )
    settings.MONITORING_MAX_QUEUE_AGE_S = 600
    assert thresholds.current().queue_age_s == 600


@pytest.mark.parametrize(("value", "message"), [("lots", "must be a whole number"), ("0", "must be >= 1")])
def test_a_bad_value_in_the_environment_is_refused_with_what_to_set(value, message, tmp_path):
    env = clean_env(DATA_DIR=str(tmp_path), MONITORING_MAX_ERROR_RATE_PCT=value)
    code = "import django; django.setup(); import optimizer.monitoring.thresholds"
    completed = subprocess.run(
        [sys.executable, "-c", code], env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        cwd=PROJECT_ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert completed.returncode != 0
    assert f"MONITORING_MAX_ERROR_RATE_PCT {message}" in completed.stderr


@pytest.mark.django_db
def test_a_higher_threshold_clears_the_banner(staff_client, settings):
    UsageRecordFactory(status="error", error_class="ProviderError", cost=0)
    UsageRecordFactory(status="ok")  # half the requests failed
    assert "50.0% of requests failed" in staff_client.get(reverse("optimizer:monitoring")).content.decode()
    settings.MONITORING_MAX_ERROR_RATE_PCT = 60
    assert "of requests failed" not in staff_client.get(reverse("optimizer:monitoring")).content.decode()
