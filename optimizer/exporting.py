"""Streamed CSV that spreadsheets open safely: UTF-8 with a BOM, and no cell run as a formula."""

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP's CSV injection advice); amounts in
    plain notation, times in ISO 8601."""
    if isinstance(value, (list, dict)):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, Decimal):
        text = format(value.normalize(), "f") if value else "0"
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_stream(header: Sequence[str], rows: Iterable[Sequence]) -> Iterator[str]:
    """The CSV text, a line at a time, for a ``StreamingHttpResponse``."""
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(header)  # the BOM makes Excel read UTF-8
    for row in rows:
        yield writer.writerow([csv_cell(value) for value in row])
