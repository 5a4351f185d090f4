"""The hooks django-axes calls for the login throttle (settings.py names them): the username and the
address a login attempt comes from, and the page a locked-out login gets."""

import ipaddress
import math

from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

USERNAME_MAX_LENGTH = AccessAttempt._meta.get_field("username").max_length


def client_username(request: HttpRequest, credentials: dict | None = None) -> str | None:
    """The username the attempt names, cut to what axes can record: Django's login form does not
    bound its length, and a longer one stopped the attempt's record (a 500 on PostgreSQL). No
    account has a name that long, so names that differ only beyond it need no counts of their own."""
    source = credentials or getattr(request, "data", request.POST)
    username = source.get(settings.AXES_USERNAME_FORM_FIELD)
    return username[:USERNAME_MAX_LENGTH] if isinstance(username, str) else username


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR; behind TRUSTED_PROXY_COUNT proxies (HTTPS=1 only), the address the outermost
    one saw: the TRUSTED_PROXY_COUNT-th entry of X-Forwarded-For from the right, since each proxy
    appends one. What stands left of it came from the client and may be forged; a header with fewer
    entries did not come through every proxy, and the connection's own address counts instead."""
    remote = _address(request.META.get("REMOTE_ADDR", ""))
    proxies = settings.TRUSTED_PROXY_COUNT if settings.HTTPS else 0
    if not proxies:
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    if len(forwarded) < proxies:
        return remote
    return _address(forwarded[-proxies]) or remote


def _address(value: str) -> str | None:
    try:
        # A zone index (fe80::1%eth0) names an interface of the proxy, not the client.
        return str(ipaddress.ip_address(value.strip().partition("%")[0]))
    except ValueError:
        return None


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """The lock page for every locked-out login (a form post, htmx or the admin's): whose login, when
    to try again and that an administrator can unlock it sooner; Retry-After says the same."""
    username = get_client_username(request, credentials) or ""
    last_failure = AccessAttempt.objects.filter(
        username=username, ip_address=request.axes_ip_address
    ).aggregate(last=Max("attempt_time"))["last"]
    retry_at = (last_failure or timezone.now()) + get_cool_off(request)
    seconds_left = max(1, math.ceil((retry_at - timezone.now()).total_seconds()))
    context = {
        "username": username,
        "retry_at": retry_at,
        "minutes_left": math.ceil(seconds_left / 60),
        "failure_limit": settings.AXES_FAILURE_LIMIT,
    }
    status = settings.AXES_HTTP_RESPONSE_CODE
    response = render(request, "registration/locked_out.html", context, status=status)
    response["Retry-After"] = str(seconds_left)
    return response
