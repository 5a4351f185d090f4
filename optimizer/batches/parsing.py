"""Batch input: what a user pastes or uploads, turned into the prompts to optimize, or refused with a
message that says what is wrong, where, and what to do. Pure: no database and no models; it reads only
settings (PROMPT_MAX_CHARS, BATCH_MAX_ITEMS, BATCH_MAX_BYTES).

Formats: a text paste (one prompt per line, or blocks between lines of ``---``), CSV with a ``prompt``
column, a JSON array, JSON Lines. Rows that cannot be optimized (too long, a control character, an
unknown type) are skipped and listed; empty rows are only counted; anything that makes the whole input
unreadable is refused with ``BatchInputError`` and nothing is returned.
"""

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import PurePath

from django.conf import settings

# The single-prompt form's definitions (optimizer.forms.CONTROL and Prompt.Type), repeated here so that
# this module needs no models; tests keep the two equal.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
PROMPT_TYPES = ("general", "creative", "technical", "analytical", "coding", "data")
TITLE_MAX = 120
TAGS_MAX, TAG_MAX_CHARS = 10, 30  # a prompt's tags, here and on the Optimize page (optimizer/forms.py)
FORMAT_BY_EXTENSION = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "text"}
TEXT_HOW_TO = "Put one prompt per line, or separate prompts of several lines with a line holding only ---."
JSON_HOW_TO = 'Each must be a string (the prompt) or an object with "prompt", such as {"prompt": "..."}.'
SHOWN_MAX = 5  # skipped rows named in a "nothing to optimize" message


@dataclass(frozen=True)
class Item:
    row: int
    text: str
    title: str = ""
    type: str = ""
    tags: tuple[str, ...] = ()
    duplicate_of: int | None = None


@dataclass(frozen=True)
class Skipped:
    row: int
    reason: str
    kind: str  # "too_long" | "control" | "bad_type" | "bad_tags"


@dataclass(frozen=True)
class Parsed:
    format: str  # "text" | "csv" | "json" | "jsonl"
    items: list[Item]
    skipped: list[Skipped]
    empty_rows: int
    columns: list[str]
    # What the parser decided that the user should hear about, e.g. a "type" column it ignored.
    notes: tuple[str, ...] = ()


class BatchInputError(ValueError):
    """Refused: the message says what is wrong, where (line, column) and what to do."""


@dataclass(frozen=True)
class _Row:
    """A candidate as read, before the checks. ``first_line`` is set in a text paste, where a control
    character's place is told as a line of the paste; elsewhere it is told within the prompt."""

    row: int
    raw: str
    title: str = ""
    type: str = ""
    tags: tuple[str, ...] = ()
    first_line: int | None = None


def parse_text(text: str) -> Parsed:
    """The textarea: one prompt per line, or, when any line holds only ``---``, the blocks between
    such lines."""
    _refuse_too_large(len(text.encode("utf-8", "surrogatepass")), "text")
    rows, blank = _text_rows(text)
    return _checked("text", rows, blank, [], where="The text")


def parse_file(name: str, data: bytes) -> Parsed:
    """An upload: the format from the name's extension (.csv .json .jsonl .ndjson .txt), else sniffed
    from the content."""
    _refuse_too_large(len(data), "file")
    text = _decoded(data)
    format_ = FORMAT_BY_EXTENSION.get(PurePath(name or "").suffix.lower()) or _sniffed(text)
    columns: list[str] = []
    if format_ == "csv":
        rows, blank, columns = _csv_rows(text)
    elif format_ == "json":
        rows, blank = _json_rows(text)
    elif format_ == "jsonl":
        rows, blank = _jsonl_rows(text)
    else:
        rows, blank = _text_rows(text)
    return _checked(format_, rows, blank, columns, where="The file")


def _refuse_too_large(size: int, what: str) -> None:
    limit = getattr(settings, "BATCH_MAX_BYTES", 10 * 1024 * 1024)
    if size > limit:
        raise BatchInputError(
            f"The {what} is {size:,} bytes ({_mib(size)}); the limit is {limit:,} bytes ({_mib(limit)}, "
            "BATCH_MAX_BYTES). Split it into smaller batches."
        )


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _decoded(data: bytes) -> str:
    """UTF-8 (a byte-order mark dropped), or a refusal that says what it looks like instead."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    if wide := _utf16_or_32(data):
        raise BatchInputError(f"The file is not UTF-8: {wide}. Save it as UTF-8 and upload it again.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = data.rfind(b"\n", 0, error.start) + 1
        line = data.count(b"\n", 0, error.start) + 1
        column = len(data[line_start : error.start].decode("utf-8")) + 1  # all valid before the first error
        raise BatchInputError(
            f"The file is not UTF-8 (byte 0x{data[error.start]:02X} at line {line:,}, column {column:,}); "
            f"it looks like {_single_byte_guess(data)}. Save it as UTF-8 and upload it again."
        ) from None


def _utf16_or_32(data: bytes) -> str:
    """Why the data looks like UTF-16 or UTF-32, or "" when it does not. Text in those encodings that
    holds only ASCII is valid UTF-8 full of NUL bytes, so it is told by its NULs, not by decoding."""
    for bom, name in (
        (b"\xff\xfe\x00\x00", "UTF-32 (little-endian)"),
        (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"),
        (b"\xff\xfe", "UTF-16 (little-endian)"),
        (b"\xfe\xff", "UTF-16 (big-endian)"),
    ):
        if data.startswith(bom):
            return f"it starts with the byte-order mark of {name}"
    if len(data) < 2 or data.count(0) * 4 < len(data):
        return ""
    even, odd = data[0::2].count(0), data[1::2].count(0)
    if min(even, odd) * 4 >= len(data) // 2:
        return "most of its bytes are NUL, so it looks like UTF-32"
    return f"every other byte is NUL, so it looks like UTF-16 ({'little' if odd > even else 'big'}-endian)"


def _single_byte_guess(data: bytes) -> str:
    """Honest and simple: accented letters in Windows-1252 or Latin-1 are single bytes among ASCII; in
    the multi-byte legacy encodings of Chinese, Japanese or Korean, bytes of 0x80 and above come in
    pairs."""
    data = data[:1_000_000]  # enough to tell, and quick on the largest upload
    high = [index for index, byte in enumerate(data) if byte >= 0x80]
    paired = sum(
        1
        for index in high
        if (index > 0 and data[index - 1] >= 0x80) or (index + 1 < len(data) and data[index + 1] >= 0x80)
    )
    if paired * 2 > len(high):
        return "a multi-byte legacy encoding such as GBK, Shift-JIS or EUC-KR"
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return "Latin-1 (ISO-8859-1) or another single-byte encoding"
    return "Windows-1252 or Latin-1"


def _sniffed(text: str) -> str:
    """The format of an upload whose name does not tell: a JSON array, JSON Lines of objects, CSV whose
    header names a "prompt" column, else a text paste."""
    head = text.lstrip()
    if head.startswith("["):
        return "json"
    first_line = head.split("\n", 1)[0]
    if head.startswith("{"):  # one object a line; an object written over several lines is JSON
        return "json" if not _is_json(first_line) and _is_json(head) else "jsonl"
    try:
        header = next(csv.reader([first_line]), [])
    except csv.Error:
        header = []
    if any(column.strip().lower() == "prompt" for column in header):
        return "csv"
    return "text"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _text_rows(text: str) -> tuple[list[_Row], int]:
    lines = text.replace("\r\n", "\n").split("\n")
    if lines[-1] == "":  # the end of the last line, not a line
        lines.pop()
    if not any(_is_separator(line) for line in lines):
        rows = [_Row(number, line, first_line=number) for number, line in enumerate(lines, 1) if line.strip()]
        return rows, len(lines) - len(rows)
    rows, blank, block, start = [], 0, [], 1
    for number, line in enumerate([*lines, "---"], 1):  # the extra separator ends the last block
        if not _is_separator(line):
            block.append(line)
            continue
        if block:
            leading = next((index for index, text in enumerate(block) if text.strip()), None)
            if leading is None:
                blank += 1
            else:
                rows.append(_Row(start + leading, "\n".join(block), first_line=start))
        block, start = [], number + 1
    return rows, blank


def _is_separator(line: str) -> bool:
    return line.strip(" \t\r") == "---"


def _csv_rows(text: str) -> tuple[list[_Row], int, list[str]]:
    # One field may hold the whole upload; the limit counts characters, never more than the bytes.
    csv.field_size_limit(max(csv.field_size_limit(), getattr(settings, "BATCH_MAX_BYTES", 10 * 1024 * 1024)))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    where: dict[str, int] = {}
    rows, blank, end = [], 0, 0
    try:
        for record in reader:
            start, end = end + 1, reader.line_num
            if header is None:
                if record:
                    header, where = record, _csv_columns(record)
                continue
            fields = {name: record[index] if index < len(record) else "" for name, index in where.items()}
            if not fields["prompt"].strip():
                blank += 1
                continue
            title = fields.get("title", "").strip() or fields.get("act", "")
            rows.append(_Row(start, fields["prompt"], _title(title), fields.get("type", ""),
                             _tags(fields.get("tags", "").split(","))))  # fmt: skip
    except csv.Error as error:
        if str(error) == "unexpected end of data":
            raise BatchInputError(
                f"The CSV is malformed: a quoted field in the record that starts at line {end + 1:,} is "
                'never closed (the file ends inside it). Add the closing quote (") and upload it again.'
            ) from None
        raise BatchInputError(
            f"The CSV is malformed at line {reader.line_num:,} ({error}). Check the quotes there: a field "
            'that holds a quote must be quoted as a whole, with the quote doubled ("").'
        ) from None
    if header is None:
        raise BatchInputError("There is nothing to optimize: the CSV file is empty. " + _csv_how_to())
    return rows, blank, header


def _csv_columns(header: list[str]) -> dict[str, int]:
    """Where the columns we read are: matched without case or surrounding spaces; the others ignored."""
    where: dict[str, int] = {}
    for index, column in enumerate(header):
        name = column.strip().lower()
        if name not in ("prompt", "title", "act", "type", "tags"):
            continue
        if name in where:
            raise BatchInputError(
                f"Two columns are named “{name}” (columns {where[name] + 1} and {index + 1}). Rename or "
                "remove one of them, so that it is clear which to read."
            )
        where[name] = index
    if "prompt" not in where:
        shown = ", ".join(f"“{_clipped(column.strip(), 40)}”" for column in header[:20])
        more = f" and {len(header) - 20:,} more" if len(header) > 20 else ""
        raise BatchInputError(
            f"No “prompt” column: the columns found are {shown}{more}. Rename the column that holds the "
            f"prompts to “prompt”.{_separator_hint(header)}"
        )
    return where


def _separator_hint(header: list[str]) -> str:
    """Spreadsheets in many locales save "CSV" with semicolons; the csv module then sees one column."""
    for separator, name in ((";", "semicolons"), ("\t", "tabs")):
        if any(part.strip().lower() == "prompt" for column in header for part in column.split(separator)):
            return f" The columns look separated by {name}: save the file as CSV with commas between them."
    return ""


def _csv_how_to() -> str:
    return "The first line names the columns; one must be “prompt” (title, type and tags are optional)."


def _json_rows(text: str) -> tuple[list[_Row], int]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        hint = ""
        if error.msg == "Extra data" and error.lineno > 1:
            hint = " It looks like JSON Lines (one JSON value per line): name the file .jsonl."
        raise BatchInputError(
            f"The JSON is malformed at line {error.lineno:,}, column {error.colno:,}: {error.msg}. Fix it "
            f"there and upload it again.{hint}"
        ) from None
    except RecursionError:
        raise BatchInputError(
            f"The JSON is nested too deeply to read. It must be one array of prompts. {JSON_HOW_TO}"
        ) from None
    except ValueError as error:  # a number of more digits than Python reads (sys.get_int_max_str_digits)
        raise BatchInputError(f"The JSON could not be read: {error}. {JSON_HOW_TO}") from None
    if not isinstance(value, list):
        raise BatchInputError(
            f"The JSON holds {_json_kind(value)}; it must be an array of prompts, such as "
            f'["first prompt", "second prompt"]. {JSON_HOW_TO}'
        )
    rows, blank = [], 0
    for index, element in enumerate(value, 1):
        row = _json_row(element, index, f"Element {index:,} of the array (counting from 1)")
        if row.raw.strip():
            rows.append(row)
        else:
            blank += 1
    return rows, blank


def _jsonl_rows(text: str) -> tuple[list[_Row], int]:
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    rows, blank = [], 0
    for number, line in enumerate(lines, 1):
        if not line.strip(" \t\r"):
            blank += 1
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise BatchInputError(
                f"Line {number:,} is not valid JSON (column {error.colno:,}: {error.msg}). Each line must be "
                f"one JSON value. {JSON_HOW_TO}"
            ) from None
        except RecursionError:
            raise BatchInputError(f"Line {number:,} is nested too deeply to read. {JSON_HOW_TO}") from None
        except ValueError as error:  # a number of more digits than Python reads
            raise BatchInputError(f"Line {number:,} could not be read: {error}. {JSON_HOW_TO}") from None
        row = _json_row(value, number, f"Line {number:,}")
        if row.raw.strip():
            rows.append(row)
        else:
            blank += 1
    return rows, blank


def _json_row(value: object, row: int, where: str) -> _Row:
    found = _json_row_read(value, row, where)
    for name, text in (
        ("prompt", found.raw),
        ("title", found.title),
        ("type", found.type),
        *(("tags", tag) for tag in found.tags),
    ):
        if (at := _unpaired_surrogate(text)) is not None:
            raise BatchInputError(
                f"{where}: “{name}” holds an unpaired surrogate escape (such as \\ud800) at character "
                f"{at:,}, which is no character. Remove it, or write the character it stands for, and upload "
                "it again."
            )
    return found


def _json_row_read(value: object, row: int, where: str) -> _Row:
    if isinstance(value, str):
        return _Row(row, value)
    if not isinstance(value, dict):
        raise BatchInputError(f"{where} is {_json_kind(value)}. {JSON_HOW_TO}")
    if "prompt" not in value:
        keys = ", ".join(f"“{_clipped(key, 40)}”" for key in list(value)[:10]) or "none"
        raise BatchInputError(
            f"{where} is an object without “prompt” (its keys: {keys}). Put each prompt's text in “prompt”."
        )
    prompt = value["prompt"]
    if not isinstance(prompt, str):
        raise BatchInputError(f"{where}: “prompt” is {_json_kind(prompt)}; it must be the prompt's text.")
    for key in ("title", "act", "type"):
        if value.get(key) is not None and not isinstance(value[key], str):
            raise BatchInputError(f"{where}: “{key}” is {_json_kind(value[key])}; it must be a string.")
    tags = value.get("tags")
    if isinstance(tags, str):
        tags = tags.split(",")
    elif tags is None:
        tags = []
    elif not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise BatchInputError(
            f"{where}: “tags” must be a list of strings or one string with commas between the tags, such as "
            '["poetry", "seasons"] or "poetry, seasons".'
        )
    title = (value.get("title") or "").strip() or value.get("act") or ""
    return _Row(row, prompt, _title(title), value.get("type") or "", _tags(tags))


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the value {str(value).lower()}"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _title(title: str) -> str:
    """One line, control characters removed, at most TITLE_MAX characters (as Prompt.title holds)."""
    return " ".join(CONTROL.sub(" ", title).split())[:TITLE_MAX]


def _tags(tags: list[str]) -> tuple[str, ...]:
    """Stripped, control characters removed (as from a title), empty ones dropped, each once."""
    cleaned = (" ".join(CONTROL.sub(" ", tag).split()) for tag in tags)
    return tuple(dict.fromkeys(tag for tag in cleaned if tag))


def _clipped(text: str, limit: int) -> str:
    """A value quoted in a message: at most ``limit`` characters, its control characters and any
    unpaired surrogate (a JSON escape such as \\ud800) written as escapes, so the message can be
    shown and stored (PostgreSQL refuses NUL in text)."""
    text = text if len(text) <= limit else f"{text[: limit - 1]}…"
    text = CONTROL.sub(lambda found: f"\\u{ord(found.group()):04x}", text)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _unpaired_surrogate(text: str) -> int | None:
    """Where ``text`` holds an unpaired surrogate (JSON can escape one; it is no character and cannot
    be stored as UTF-8), 1-based; None when it holds none."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return error.start + 1
    return None


def _checked(format_: str, rows: list[_Row], blank: int, columns: list[str], *, where: str) -> Parsed:
    """The checks every format shares: length, control characters, type, duplicates, the batch's size."""
    limit = settings.PROMPT_MAX_CHARS
    notes, use_types = _type_note(format_, rows)
    items: list[Item] = []
    skipped: list[Skipped] = []
    first_row: dict[str, int] = {}
    for row in rows:
        raw = row.raw.replace("\r\n", "\n")
        text = raw.strip()
        if len(text) > limit:
            skipped.append(Skipped(row.row, f"{len(text):,} characters; the limit is {limit:,}", "too_long"))
        elif match := CONTROL.search(raw):
            where_ = _place(row, raw, match.start())
            reason = f"contains a control character (U+{ord(match.group()):04X}) {where_}"
            skipped.append(Skipped(row.row, reason, "control"))
        elif use_types and (type_ := row.type.strip().lower()) and type_ not in PROMPT_TYPES:
            reason = f"unknown type “{_clipped(row.type.strip(), 40)}”: use one of {', '.join(PROMPT_TYPES)}"
            skipped.append(Skipped(row.row, reason, "bad_type"))
        elif len(row.tags) > TAGS_MAX or any(len(tag) > TAG_MAX_CHARS for tag in row.tags):
            reason = (
                f"{len(row.tags)} tags, the longest {max(len(tag) for tag in row.tags):,} characters: use at "
                f"most {TAGS_MAX} tags of at most {TAG_MAX_CHARS} characters each, as for a single prompt"
            )
            skipped.append(Skipped(row.row, reason, "bad_tags"))
        else:
            type_ = row.type.strip().lower() if use_types else ""
            duplicate_of = first_row.setdefault(text, row.row)
            items.append(Item(row.row, text, row.title, type_, row.tags,
                              duplicate_of if duplicate_of != row.row else None))  # fmt: skip
    max_items = getattr(settings, "BATCH_MAX_ITEMS", 5000)
    if len(items) > max_items:
        raise BatchInputError(
            f"The batch has {len(items):,} prompts to optimize; the limit is {max_items:,} "
            "(BATCH_MAX_ITEMS). "
            f"Split it into batches of at most {max_items:,}."
        )
    if not items:
        raise BatchInputError(_nothing_message(format_, skipped, blank, where))
    return Parsed(format_, items, skipped, blank, columns, notes)


def _type_note(format_: str, rows: list[_Row]) -> tuple[tuple[str, ...], bool]:
    """A "type" that holds none of the prompt types means something else (the real prompts CSV's
    TEXT/STRUCTURED/IMAGE is the format of the answer): it is ignored and the user is told, rather than
    every row being skipped. Where some values are prompt types, the others are typos: those rows skip."""
    given = list(dict.fromkeys(row.type.strip() for row in rows if row.type.strip()))
    if not given or any(value.lower() in PROMPT_TYPES for value in given):
        return (), True
    shown = ", ".join(f"“{_clipped(value, 40)}”" for value in given[:SHOWN_MAX])
    more = f" and {len(given) - SHOWN_MAX:,} more" if len(given) > SHOWN_MAX else ""
    what = "column" if format_ == "csv" else "field"
    note = (
        f"The “type” {what} was ignored: its values ({shown}{more}) are not prompt types "
        f"({', '.join(PROMPT_TYPES)}), so every prompt gets the batch's type."
    )
    return (note,), False


def _place(row: _Row, raw: str, position: int) -> str:
    line = raw.count("\n", 0, position)
    column = position - (raw.rfind("\n", 0, position) + 1) + 1
    if row.first_line is not None and "\n" not in raw:  # a line of a text paste: its row is the line
        return f"at column {column:,}"
    if row.first_line is not None:  # a block of a text paste: the paste's own lines
        return f"at line {row.first_line + line:,}, column {column:,}"
    if "\n" in raw:
        return f"at line {line + 1:,}, column {column:,} of the prompt"
    return f"at character {column:,} of the prompt"


def _nothing_message(format_: str, skipped: list[Skipped], blank: int, where: str) -> str:
    how = {"text": TEXT_HOW_TO, "csv": _csv_how_to(), "json": JSON_HOW_TO, "jsonl": JSON_HOW_TO}[format_]
    if not skipped:
        empty = f" ({blank:,} empty {'row' if blank == 1 else 'rows'})" if blank else ""
        return f"There is nothing to optimize: {where.lower()} holds no prompts{empty}. {how}"
    shown = " ".join(f"Row {skip.row:,}: {skip.reason}." for skip in skipped[:SHOWN_MAX])
    more = f" And {len(skipped) - SHOWN_MAX:,} more." if len(skipped) > SHOWN_MAX else ""
    return (
        f"There is nothing to optimize: every prompt was skipped. {shown}{more} Fix these rows and try again."
    )
