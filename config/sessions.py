"""Django's database sessions, read with one plain statement.

Every signed-in request loads its session first. Django's store compiles an ORM query for it on each
request (a tenth of a result-cache hit's time in the database layer, more than running it); this
store runs the same SELECT built once from the model's metadata. Writing, expiry and clearing are
Django's own, so the table, the data and ``clearsessions`` are unchanged."""

from django.contrib.sessions.backends import db
from django.db import connections, router
from django.utils import timezone


class SessionStore(db.SessionStore):
    def _get_session_from_db(self):
        if not self.session_key:  # missing, or refused as malformed by SessionBase
            self._session_key = None
            return None
        connection = connections[router.db_for_read(self.model)]
        with connection.cursor() as cursor:
            cursor.execute(
                _select(connection, self.model._meta.db_table),
                [self.session_key, connection.ops.adapt_datetimefield_value(timezone.now())],
            )
            row = cursor.fetchone()
        if row is None:  # no such session, or expired: a new one is made if the request needs one
            self._session_key = None
            return None
        return self.model(session_key=self.session_key, session_data=row[0])


_SELECTS: dict[tuple[str, str], str] = {}


def _select(connection, table: str) -> str:
    """The statement, built once per database vendor."""
    key = (connection.vendor, table)
    if key not in _SELECTS:
        quote = connection.ops.quote_name
        _SELECTS[key] = (
            f"SELECT {quote('session_data')} FROM {quote(table)} "  # noqa: S608 - names from the model, not input
            f"WHERE {quote('session_key')} = %s AND {quote('expire_date')} > %s"
        )
    return _SELECTS[key]
