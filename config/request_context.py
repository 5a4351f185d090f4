"""The id of the request (or task) being served, for the log lines it writes and the tasks it queues.

A context variable, not a thread-local: each thread of a gunicorn worker and each task of a django-q2
worker sees only its own. Outside a request or a task it is ``NO_REQUEST``.
"""

import re
import secrets
from contextvars import ContextVar, Token

NO_REQUEST = "-"
# What a proxy's id may look like to be kept (nginx's $request_id, a UUID, Heroku's, AWS's "Root=1-..."):
# a safe alphabet, so it cannot split a log line or forge a field, and a bounded length.
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=+-]{7,127}")

_request_id: ContextVar[str] = ContextVar("request_id", default=NO_REQUEST)


def request_id_get() -> str:
    return _request_id.get()


def request_id_set(value: str) -> Token:
    """Make ``value`` the current id; pass the token to ``request_id_reset`` when the work ends."""
    return _request_id.set(value)


def request_id_reset(token: Token) -> None:
    _request_id.reset(token)


def request_id_from(header: str | None) -> str:
    """The proxy's id when it is a valid one, else a new one (32 hex digits)."""
    if header and VALID_REQUEST_ID.fullmatch(header):
        return header
    return secrets.token_hex(16)
