"""Login throttling (django-axes): a username is locked from one address after too many wrong
passwords, on our login page and the admin's, and an administrator can unlock it."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from config.login_throttle import client_ip
from tests.factories import PASSWORD, UserFactory
from tests.html import inline_code
from tests.support import clean_env, manage

pytestmark = pytest.mark.django_db

LIMIT = django_settings.AXES_FAILURE_LIMIT
LOCKED = 429


def log_in(client, username, password, url_name="login", **headers):
    return client.post(reverse(url_name), {"username": username, "password": password}, **headers)


def fail(client, username, times, url_name="login", **headers):
    return [log_in(client, username, "wrong", url_name, **headers).status_code for _ in range(times)]


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_the_defaults_are_five_failures_and_fifteen_minutes():
    assert LIMIT == 5
    assert django_settings.AXES_COOLOFF_TIME.total_seconds() == 15 * 60


def test_wrong_passwords_lock_the_username_from_that_address_and_then_the_right_one_is_refused(client, owner):
    assert fail(client, owner.username, LIMIT + 1) == [200] * (LIMIT - 1) + [LOCKED] * 2

    response = log_in(client, owner.username, PASSWORD)

    assert response.status_code == LOCKED
    assert not signed_in(client)
    page = response.content.decode()
    assert "Too many failed logins" in page
    assert "in 15 minutes" in page
    retry_at = timezone.localtime(AccessAttempt.objects.get().attempt_time + timedelta(minutes=15))
    assert retry_at.strftime("%H:%M") in page
    assert "An administrator can unlock it" in page
    assert int(response.headers["Retry-After"]) in range(14 * 60, 15 * 60 + 1)


def test_the_lock_page_is_in_our_layout_and_the_csp_allows_it(client, owner):
    fail(client, owner.username, LIMIT)

    response = log_in(client, owner.username, PASSWORD)

    page = response.content.decode()
    assert 'class="site-header"' in page and "<title>Locked out" in page
    found = inline_code(page)
    assert (found.inline_scripts, found.style_elements, found.style_attributes, found.event_handlers) == (
        0,
        0,
        [],
        [],
    )


def test_an_htmx_or_ajax_login_gets_the_same_page(client, owner):
    fail(client, owner.username, LIMIT)

    response = log_in(client, owner.username, PASSWORD, HTTP_X_REQUESTED_WITH="XMLHttpRequest")

    assert response.status_code == LOCKED
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Too many failed logins" in response.content.decode()


def test_the_same_username_from_another_address_is_not_locked(client, owner):
    fail(client, owner.username, LIMIT)
    assert log_in(client, owner.username, PASSWORD).status_code == LOCKED

    response = log_in(client, owner.username, PASSWORD, REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 302
    assert signed_in(client)


def test_another_username_from_the_same_address_is_not_locked(client, owner, other_user):
    fail(client, owner.username, LIMIT)
    assert log_in(client, owner.username, PASSWORD).status_code == LOCKED

    response = log_in(client, other_user.username, PASSWORD)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(other_user.pk)


def test_an_unknown_username_is_locked_the_same_way(client):
    assert fail(client, "nobody-by-this-name", LIMIT) == [200] * (LIMIT - 1) + [LOCKED]


def test_a_right_password_before_the_limit_starts_the_count_again(client, owner):
    fail(client, owner.username, LIMIT - 1)
    assert log_in(client, owner.username, PASSWORD).status_code == 302
    client.post(reverse("logout"))

    assert fail(client, owner.username, LIMIT - 1) == [200] * (LIMIT - 1)
    assert fail(client, owner.username, 1) == [LOCKED]


def test_the_lock_ends_after_the_cool_off(client, owner):
    fail(client, owner.username, LIMIT)
    assert log_in(client, owner.username, PASSWORD).status_code == LOCKED
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=15, seconds=1))

    assert log_in(client, owner.username, PASSWORD).status_code == 302


def test_trying_again_while_locked_does_not_push_the_time_back(client, owner):
    fail(client, owner.username, LIMIT)
    locked_at = AccessAttempt.objects.get().attempt_time

    fail(client, owner.username, 3)

    assert AccessAttempt.objects.get().attempt_time == locked_at


def test_the_admin_login_is_protected_too_and_shares_the_count(client, staff_user):
    assert fail(client, staff_user.username, LIMIT - 1, url_name="admin:login") == [200] * (LIMIT - 1)
    assert fail(client, staff_user.username, 1) == [LOCKED]

    response = log_in(client, staff_user.username, PASSWORD, url_name="admin:login")

    assert response.status_code == LOCKED
    assert "Too many failed logins" in response.content.decode()
    assert not signed_in(client)


def test_x_forwarded_for_is_ignored_without_https_and_a_proxy_count(client, owner, settings):
    for https, count in ((False, 0), (True, 0)):
        settings.HTTPS, settings.TRUSTED_PROXY_COUNT = https, count
        AccessAttempt.objects.all().delete()
        addresses = [f"198.51.100.{n}" for n in range(LIMIT)]
        statuses = [
            log_in(client, owner.username, "wrong", HTTP_X_FORWARDED_FOR=address).status_code
            for address in addresses
        ]
        assert statuses[-1] == LOCKED, (https, count)
        assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


def test_behind_the_configured_proxies_the_address_they_saw_counts(client, owner, settings):
    settings.HTTPS, settings.TRUSTED_PROXY_COUNT = True, 1
    # Whatever the client put before the proxy's own entry changes nothing.
    forged = [f"10.9.9.{n}, 198.51.100.7" for n in range(LIMIT)]
    statuses = [
        log_in(client, owner.username, "wrong", HTTP_X_FORWARDED_FOR=xff).status_code for xff in forged
    ]
    assert statuses[-1] == LOCKED
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.7"}

    response = log_in(client, owner.username, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.8")

    assert response.status_code == 302


@pytest.mark.parametrize(
    ("https", "count", "forwarded", "expected"),
    [
        (False, 0, "198.51.100.7", "192.0.2.1"),
        (True, 0, "198.51.100.7", "192.0.2.1"),
        (True, 1, "198.51.100.7", "198.51.100.7"),
        (True, 1, "6.6.6.6, 198.51.100.7", "198.51.100.7"),
        (True, 2, "6.6.6.6, 198.51.100.7, 10.0.0.2", "198.51.100.7"),
        (True, 2, "198.51.100.7", "192.0.2.1"),  # fewer entries than proxies: not through them all
        (True, 1, None, "192.0.2.1"),
        (True, 1, "", "192.0.2.1"),
        (True, 1, "not-an-address", "192.0.2.1"),
        (True, 1, "2001:db8::7", "2001:db8::7"),
        (True, 1, " 198.51.100.7 ", "198.51.100.7"),
    ],
)
def test_client_ip(settings, https, count, forwarded, expected):
    settings.HTTPS, settings.TRUSTED_PROXY_COUNT = https, count
    headers = {} if forwarded is None else {"HTTP_X_FORWARDED_FOR": forwarded}
    request = RequestFactory().post("/login/", REMOTE_ADDR="192.0.2.1", **headers)

    assert client_ip(request) == expected


@pytest.mark.parametrize(
    "username",
    ["owner\x00", "o" * 400, "ünïcödé 名前", "   ", "<script>alert(1)</script>", "owner' OR '1'='1"],
)
def test_odd_usernames_never_cause_a_server_error(client, owner, username):
    statuses = fail(client, username, LIMIT + 1)

    assert all(status in (200, LOCKED) for status in statuses)
    page = log_in(client, username, "wrong").content.decode()
    assert "<script>alert(1)</script>" not in page


def test_an_over_long_username_is_counted_cut_to_what_can_be_recorded(client):
    # Django's login form does not bound the length; PostgreSQL refused the record with a 500.
    statuses = fail(client, "o" * 400, LIMIT)

    assert statuses == [200] * (LIMIT - 1) + [LOCKED]
    assert AccessAttempt.objects.get().username == "o" * 255


def test_odd_forwarded_headers_never_cause_a_server_error(client, owner, settings):
    settings.HTTPS, settings.TRUSTED_PROXY_COUNT = True, 2
    for forwarded in ("", ",", ", , ,", "x" * 5000, "1.2.3.4:80, 5.6.7.8:443", "::1, fe80::1%eth0, ::1"):
        response = log_in(client, owner.username, "wrong", HTTP_X_FORWARDED_FOR=forwarded)
        assert response.status_code in (200, LOCKED), forwarded


def test_the_unlock_command_clears_the_lock(client, owner):
    fail(client, owner.username, LIMIT)
    assert log_in(client, owner.username, PASSWORD).status_code == LOCKED

    call_command("axes_reset_username", owner.username)

    assert log_in(client, owner.username, PASSWORD).status_code == 302


def test_unlocking_one_username_from_one_address(client, owner):
    fail(client, owner.username, LIMIT)
    fail(client, owner.username, LIMIT, REMOTE_ADDR="203.0.113.9")

    call_command("axes_reset_ip_username", "127.0.0.1", owner.username)

    assert log_in(client, owner.username, PASSWORD).status_code == 302
    client.post(reverse("logout"))
    assert log_in(client, owner.username, PASSWORD, REMOTE_ADDR="203.0.113.9").status_code == LOCKED


def test_staff_see_the_lock_in_the_admin_and_unlock_by_deleting_it(client, owner, staff_user):
    fail(client, owner.username, LIMIT)
    admin = type(client)()
    admin.force_login(staff_user)

    changelist = admin.get(reverse("admin:axes_accessattempt_changelist") + "?locked_out=yes")
    assert changelist.status_code == 200
    assert owner.username in changelist.content.decode()
    attempt = AccessAttempt.objects.get()
    deleted = admin.post(
        reverse("admin:axes_accessattempt_changelist"),
        {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"},
    )
    assert deleted.status_code == 302

    assert log_in(client, owner.username, PASSWORD).status_code == 302


def test_the_admin_lists_the_attempts_and_the_logins(staff_client):
    index = staff_client.get(reverse("admin:index")).content.decode()

    assert reverse("admin:axes_accessattempt_changelist") in index
    assert reverse("admin:axes_accesslog_changelist") in index


def test_a_correct_login_still_works_with_the_throttle_in_place(client):
    user = UserFactory(username="carol")

    assert log_in(client, user.username, PASSWORD).status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"LOGIN_FAILURE_LIMIT": "0"}, "LOGIN_FAILURE_LIMIT must be >= 1"),
        ({"LOGIN_FAILURE_LIMIT": "five"}, "LOGIN_FAILURE_LIMIT must be a whole number"),
        ({"LOGIN_COOLOFF_MINUTES": "0"}, "LOGIN_COOLOFF_MINUTES must be >= 1"),
        ({"TRUSTED_PROXY_COUNT": "-1"}, "TRUSTED_PROXY_COUNT must be >= 0"),
        ({"TRUSTED_PROXY_COUNT": "1"}, "TRUSTED_PROXY_COUNT needs HTTPS=1"),
    ],
)
def test_bad_throttle_settings_stop_the_start_with_a_message(tmp_path, variables, message):
    completed = manage("check", env=clean_env(DATA_DIR=str(tmp_path), **variables))

    assert completed.returncode == 2
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr


def test_throttle_settings_come_from_the_environment(tmp_path):
    completed = manage(
        "shell",
        "-c",
        "from django.conf import settings as s; "
        "print(s.AXES_FAILURE_LIMIT, int(s.AXES_COOLOFF_TIME.total_seconds()), s.TRUSTED_PROXY_COUNT)",
        env=clean_env(
            DATA_DIR=str(tmp_path),
            LOGIN_FAILURE_LIMIT="3",
            LOGIN_COOLOFF_MINUTES="2",
            HTTPS="1",
            TRUSTED_PROXY_COUNT="1",
        ),
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[-1] == "3 120 1"
