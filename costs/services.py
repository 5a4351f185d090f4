"""State changes of the costs app: usage records (the budget gate is in ``costs.budgets``)."""

from decimal import Decimal

from django.db import connections, router, transaction
from django.utils import timezone

from costs.budgets import spend_add
from costs.models import UsageRecord
from costs.snapshot import Snapshot, current


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
    snapshot: Snapshot | None = None,
) -> None:
    """Record one model call. Every call through the gateway writes exactly one of these.

    A priced record adds its cost to the running totals of the budgets it counts against, in the
    same transaction (``costs.budgets.spend_add``); with no budget, it is the one INSERT.
    ``snapshot``: the prices and budgets the caller already holds (read here when not given).

    This sits on every model call's path, so the INSERT is built once per connection vendor from
    the model's metadata instead of compiled by the ORM each time, and the values are adapted for
    the database directly (a model instance and each field's preparation cost three times the
    INSERT itself).
    """
    alias = router.db_for_write(UsageRecord)
    connection = connections[alias]
    ops = connection.ops
    created_at = timezone.now()
    values = {
        "created_at": ops.adapt_datetimefield_value(created_at),
        "user_id": user_id,
        "run_id": run_id,
        "provider": provider,
        "model": model,
        "operation": operation[:60],
        "input_tokens": int(input_tokens),
        "output_tokens": int(output_tokens),
        "cached_tokens": int(cached_tokens),
        "tokens_estimated": bool(tokens_estimated),
        "cost": None if cost is None else ops.adapt_decimalfield_value(cost, *_MONEY),
        "saved_cost": ops.adapt_decimalfield_value(saved_cost, *_MONEY),
        "latency_ms": int(latency_ms),
        "status": status,
        "error_class": error_class[:80],
        "http_status": http_status,
    }
    names, sql = _insert_statement(connection)
    params = [values[name] for name in names]
    budgets = (snapshot or current()).budgets_for(user_id) if cost else ()
    if not budgets:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        return
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        cursor.execute(sql, params)
        spend_add(budgets, cost=cost, at=created_at)


_COST_FIELD = UsageRecord._meta.get_field("cost")
_MONEY = (_COST_FIELD.max_digits, _COST_FIELD.decimal_places)  # the same for saved_cost


_INSERT_STATEMENTS: dict[str, tuple[list[str], str]] = {}


def _insert_statement(connection) -> tuple[list[str], str]:
    """The columns' attribute names and the INSERT statement for usage records, built once per
    database vendor from the model's metadata (no user input reaches the SQL text)."""
    if connection.vendor not in _INSERT_STATEMENTS:
        quote = connection.ops.quote_name
        fields = [field for field in UsageRecord._meta.concrete_fields if not field.primary_key]
        columns = ", ".join(quote(field.column) for field in fields)
        placeholders = ", ".join(["%s"] * len(fields))
        table = quote(UsageRecord._meta.db_table)
        _INSERT_STATEMENTS[connection.vendor] = (
            [field.attname for field in fields],
            f"INSERT INTO {table} ({columns}) VALUES ({placeholders})",  # noqa: S608 - metadata only
        )
    return _INSERT_STATEMENTS[connection.vendor]
