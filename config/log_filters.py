"""Filters for the LOGGING setting."""

import logging

from config.request_context import request_id_get


class DisallowedHostAsWarning(logging.Filter):
    """A bad Host header is a stranger's mistake or a scan, not a fault of ours: Django logs it as
    an error with a traceback, so anyone could flood the log. Keep one warning line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        # Django asked for ERROR, so the logger's level let it through: apply it to the warning.
        return logging.getLogger(record.name).isEnabledFor(logging.WARNING)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record: the id of the request or task that wrote it, ``-``
    outside both. On the handler, so records propagated from any logger get it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_get()
        return True
