"""State changes of the costs app: usage records (the budget gate is in ``costs.budgets``)."""

from decimal import Decimal

from django.db import connections, router

from costs.models import UsageRecord


def usage_record_create(
    *,
    user_id: int | None,
    run_id: int | None,
    provider: str,
    model: str,
    operation: str,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cached_tokens: int = 0,
    tokens_estimated: bool = False,
    cost: Decimal | None,
    saved_cost: Decimal = Decimal(0),
    latency_ms: int,
    status: str,
    error_class: str = "",
    http_status: int | None = None,
) -> None:
    """Record one model call. Every call through the gateway writes exactly one of these.

    This sits on every model call's path, so the INSERT is built once per connection vendor
    instead of compiled by the ORM each time (half the cost); the values still go through the
    model's own fields, so defaults, ``auto_now_add`` and database conversions apply as usual.
    """
    record = UsageRecord(
        user_id=user_id,
        run_id=run_id,
        provider=provider,
        model=model,
        operation=operation[:60],
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=cached_tokens,
        tokens_estimated=tokens_estimated,
        cost=cost,
        saved_cost=saved_cost,
        latency_ms=latency_ms,
        status=status,
        error_class=error_class[:80],
        http_status=http_status,
    )
    connection = connections[router.db_for_write(UsageRecord)]
    fields, sql = _insert_statement(connection)
    params = [field.get_db_prep_save(field.pre_save(record, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


_INSERT_STATEMENTS: dict[str, tuple[list, str]] = {}


def _insert_statement(connection) -> tuple[list, str]:
    """The fields and INSERT statement for usage records, built once per database vendor from the
    model's metadata (no user input reaches the SQL text)."""
    if connection.vendor not in _INSERT_STATEMENTS:
        quote = connection.ops.quote_name
        fields = [field for field in UsageRecord._meta.concrete_fields if not field.primary_key]
        columns = ", ".join(quote(field.column) for field in fields)
        placeholders = ", ".join(["%s"] * len(fields))
        table = quote(UsageRecord._meta.db_table)
        _INSERT_STATEMENTS[connection.vendor] = (
            fields,
            f"INSERT INTO {table} ({columns}) VALUES ({placeholders})",  # noqa: S608 - metadata only
        )
    return _INSERT_STATEMENTS[connection.vendor]
