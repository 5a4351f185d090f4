"""A provider's "API key variable" names a provider key, never one of the product's own secrets.

The provider sends that variable's value as a bearer token to a base URL an admin chooses: a name
like ADMIN_PASSWORD would send the admin password to any server. The name is checked when a
provider is saved (the model's clean, hence the admin form), and again at call time for rows saved
before that check or through ``update()``.
"""

import re

import pytest
from django.core.checks import ERROR, run_checks
from django.core.exceptions import ValidationError

from optimizer.llm import adapters, gateway
from optimizer.llm.errors import ProviderError
from optimizer.models import ModelChoice, Provider
from tests.optimizer.llm.conftest import add_model, builtin, make_request
from tests.support import PROJECT_ROOT

pytestmark = pytest.mark.django_db

# Secrets the product reads for itself, with values a leak would show.
PRODUCT_SECRETS = {
    "ADMIN_PASSWORD": "admin-password-never-sent-anywhere",
    "SECRET_KEY": "the-django-secret-key-never-sent-anywhere-0123456789",
    "DATABASE_URL": "postgresql://app:db-password-never-sent@127.0.0.1:5432/prompts",
    "SMTP_PASSWORD": "smtp-password-never-sent-anywhere",
    "REDIS_URL": "redis://:redis-password-never-sent@127.0.0.1:6379/0",
}
WHAT_TO_DO = "ending in _API_KEY, e.g. OPENAI_API_KEY, or list it in PROVIDER_KEY_VARIABLES"


def provider(api_key_env: str) -> Provider:
    return Provider(name="Somewhere", kind=Provider.Kind.OPENAI, base_url="https://llm.example/v1",
                    api_key_env=api_key_env)  # fmt: skip


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "MY_PROXY_API_KEY", "X2_API_KEY", ""])
def test_a_provider_key_name_by_convention_or_none_is_accepted(name):
    provider(name).full_clean()


@pytest.mark.parametrize(
    "name",
    [
        "HOME",
        "PATH",
        "API_KEY",
        "openai_api_key",
        "OPENAI_API_KEY_BACKUP",
        "OPENAI-API-KEY",
        "OPENAI_API_KEY\n",
    ],
)
def test_any_other_name_is_refused_when_saving_with_a_message_that_says_what_to_do(name):
    with pytest.raises(ValidationError) as refused:
        provider(name).full_clean()

    messages = refused.value.message_dict["api_key_env"]
    assert len(messages) == 1 and WHAT_TO_DO in messages[0]


def test_a_name_listed_in_provider_key_variables_is_accepted(settings):
    settings.PROVIDER_KEY_VARIABLES = ["LOCAL_LLM_TOKEN"]

    provider("LOCAL_LLM_TOKEN").full_clean()


@pytest.mark.parametrize("listed", [False, True])
@pytest.mark.parametrize("name", [*PRODUCT_SECRETS, "SMTP_USER", "ADMIN_USERNAME", "secret_key"])
def test_a_product_setting_is_refused_even_when_listed(settings, name, listed):
    settings.PROVIDER_KEY_VARIABLES = [name, "LOCAL_LLM_TOKEN"] if listed else []

    with pytest.raises(ValidationError) as refused:
        provider(name).full_clean()

    messages = refused.value.message_dict["api_key_env"]
    assert len(messages) == 1
    assert f"{name} is one of Prompt Optimizer's own settings" in messages[0]
    assert "e.g. OPENAI_API_KEY" in messages[0]


def stored_with_key_variable(fake, name: str) -> ModelChoice:
    """A row saved before the check existed (or through ``update()``, which skips it)."""
    choice = add_model(fake.url, name=f"Stored {name}")
    Provider.objects.filter(pk=choice.provider_id).update(api_key_env=name)
    return ModelChoice.objects.select_related("provider").get(pk=choice.pk)


@pytest.mark.parametrize("name", list(PRODUCT_SECRETS))
def test_a_stored_row_naming_a_product_secret_never_sends_it(fake, monkeypatch, settings, name):
    monkeypatch.setenv(name, PRODUCT_SECRETS[name])
    settings.PROVIDER_KEY_VARIABLES = [name]  # listing it changes nothing
    choice = stored_with_key_variable(fake, name)

    chosen = gateway.call(make_request("chosen"), builtin=builtin, model=choice)
    auto = gateway.call(make_request("auto"), builtin=builtin)

    assert chosen.builtin and auto.builtin
    assert [skip.reason for skip in chosen.skipped + auto.skipped] == ["no API key", "no API key"]
    # The fake records every request's headers (credentials masked, their presence kept): none came.
    assert fake.requests == []
    assert all(r["headers"]["has-credentials"] == "false" for r in fake.requests)


def test_a_stored_row_naming_any_set_variable_never_sends_it(fake, monkeypatch):
    monkeypatch.setenv("SOME_OTHER_TOKEN", "another-services-token")
    choice = stored_with_key_variable(fake, "SOME_OTHER_TOKEN")

    result = gateway.call(make_request(), builtin=builtin, model=choice)

    assert result.builtin and fake.requests == []


def test_auto_does_not_tell_whether_a_refused_variable_is_set(fake, monkeypatch):
    choice = stored_with_key_variable(fake, "SOME_OTHER_TOKEN")
    unset = gateway.call(make_request("one"), builtin=builtin)
    monkeypatch.setenv("SOME_OTHER_TOKEN", "another-services-token")
    present = gateway.call(make_request("two"), builtin=builtin)

    passed_over = [
        [item["why"] for item in result.selection["passed_over"] if choice.model_id in item["model"]]
        for result in (unset, present)
    ]
    assert (
        passed_over[0] == passed_over[1] == ["its API key variable is refused (not a provider key variable)"]
    )
    assert fake.requests == []


def test_the_call_time_refusal_says_why(monkeypatch):
    monkeypatch.setenv("ADMIN_PASSWORD", PRODUCT_SECRETS["ADMIN_PASSWORD"])

    with pytest.raises(ProviderError) as refused:
        adapters.api_key("ADMIN_PASSWORD")

    reason = str(refused.value)
    assert "ADMIN_PASSWORD is one of Prompt Optimizer's own settings" in reason
    assert PRODUCT_SECRETS["ADMIN_PASSWORD"] not in reason


def test_a_listed_name_and_a_conventional_name_still_send_their_key(fake, monkeypatch, settings):
    settings.PROVIDER_KEY_VARIABLES = ["LOCAL_LLM_TOKEN"]
    monkeypatch.setenv("LOCAL_LLM_TOKEN", "local-token")
    monkeypatch.setenv("PROXY_API_KEY", "proxy-key")
    listed = stored_with_key_variable(fake, "LOCAL_LLM_TOKEN")
    conventional = stored_with_key_variable(fake, "PROXY_API_KEY")

    first = gateway.call(make_request("one"), builtin=builtin, model=listed)
    second = gateway.call(make_request("two"), builtin=builtin, model=conventional)

    assert not first.builtin and not second.builtin
    assert [r["headers"]["has-credentials"] for r in fake.requests] == ["true", "true"]
    assert adapters.api_key("LOCAL_LLM_TOKEN") == "local-token"


def key_variable_errors() -> list:
    return [message for message in run_checks() if message.id == "optimizer.E001"]


def test_the_system_check_reports_a_listed_product_secret_and_nothing_else(settings):
    settings.PROVIDER_KEY_VARIABLES = ["LOCAL_LLM_TOKEN", "OPENROUTER_API_KEY"]
    assert key_variable_errors() == []

    settings.PROVIDER_KEY_VARIABLES = ["LOCAL_LLM_TOKEN", "SECRET_KEY", "SMTP_PASSWORD"]
    errors = key_variable_errors()

    assert [error.level for error in errors] == [ERROR, ERROR]
    assert "SECRET_KEY" in errors[0].msg and "SMTP_PASSWORD" in errors[1].msg
    assert all("PROVIDER_KEY_VARIABLES" in error.msg for error in errors)
    assert all("Remove it from PROVIDER_KEY_VARIABLES" in error.hint for error in errors)


# Every literal environment variable name the product reads for itself.
READS = re.compile(
    r"""(?:env_(?:str|int|bool|list|choice)\(|environ\.get\(|environ\.setdefault\(|environ\[)\s*"([A-Za-z_][A-Za-z0-9_]*)\""""
)


def test_every_variable_the_product_reads_is_refused_as_a_key_variable():
    from optimizer.llm.key_names import PRODUCT_VARIABLES

    sources = [PROJECT_ROOT / "manage.py"]
    for app in ("config", "optimizer", "costs", "backups"):
        sources += (PROJECT_ROOT / app).rglob("*.py")
    read = {name for path in sources for name in READS.findall(path.read_text())}

    assert {"SECRET_KEY", "DATABASE_URL", "ADMIN_PASSWORD", "SMTP_PASSWORD", "OPENAI_BASE_URL"} <= read
    missing = read - PRODUCT_VARIABLES
    assert missing == set(), f"add {sorted(missing)} to PRODUCT_VARIABLES in optimizer/llm/key_names.py"
