import re

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_int, env_list, env_str


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("TRUE", True), ("0", False), ("false", False), (" 1 ", True)],
)
def test_env_bool_accepts_one_zero_true_false(raw, expected):
    assert env_bool("DEBUG", environ={"DEBUG": raw}) is expected


@pytest.mark.parametrize("raw", ["yes", "no", "on", "2", "tru"])
def test_env_bool_rejects_anything_else_with_the_variable_named(raw):
    with pytest.raises(ImproperlyConfigured, match=rf"DEBUG must be 1 or 0.*{raw!r}"):
        env_bool("DEBUG", environ={"DEBUG": raw})


def test_unset_or_blank_variables_take_the_default():
    assert env_bool("DEBUG", True, environ={}) is True
    assert env_bool("DEBUG", False, environ={"DEBUG": "  "}) is False
    assert env_int("PORT", 8000, environ={"PORT": ""}) == 8000
    assert env_str("HOST", "127.0.0.1", environ={}) == "127.0.0.1"
    assert env_list("ALLOWED_HOSTS", ["localhost"], environ={}) == ["localhost"]


def test_env_int_checks_numbers_and_range():
    assert env_int("PORT", 8000, minimum=1, maximum=65535, environ={"PORT": "8080"}) == 8080
    with pytest.raises(ImproperlyConfigured, match="PORT must be a whole number, not 'eighty'"):
        env_int("PORT", 8000, environ={"PORT": "eighty"})
    with pytest.raises(ImproperlyConfigured, match="PORT must be >= 1 and <= 65535, not 70000"):
        env_int("PORT", 8000, minimum=1, maximum=65535, environ={"PORT": "70000"})


def test_env_list_splits_and_trims():
    assert env_list("ALLOWED_HOSTS", [], environ={"ALLOWED_HOSTS": " a.example , b.example "}) == [
        "a.example",
        "b.example",
    ]


@pytest.mark.parametrize("raw", [", , ", "a.example,,b.example", "a.example,"])
def test_env_list_refuses_an_empty_entry_with_the_variable_named(raw):
    # Dropping blanks turned ALLOWED_HOSTS=", , " into no host at all: every request got 400.
    message = re.escape(f"ALLOWED_HOSTS has an empty entry in {raw.strip()!r}")
    with pytest.raises(ImproperlyConfigured, match=message):
        env_list("ALLOWED_HOSTS", ["localhost"], environ={"ALLOWED_HOSTS": raw})


def test_env_choice_is_case_insensitive_and_strict():
    assert env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO"), environ={"LOG_LEVEL": "debug"}) == "DEBUG"
    with pytest.raises(ImproperlyConfigured, match="LOG_LEVEL must be one of DEBUG, INFO, not 'LOUD'"):
        env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO"), environ={"LOG_LEVEL": "LOUD"})
