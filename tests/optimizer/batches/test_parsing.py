"""The batch input parser: every format's rows, every skip with its reason, every refusal with where
and what to do; and the real prompts CSV, checked against a plain csv.DictReader reading of it."""

import codecs
import csv
import io
import json
import re
import sys

import pytest

from optimizer.batches import parsing
from optimizer.batches.parsing import BatchInputError, Item, Skipped, parse_file, parse_text
from optimizer.forms import CONTROL
from optimizer.models import Prompt
from tests.prompts_csv import PROMPTS_CSV


def refused(call, *args) -> str:
    with pytest.raises(BatchInputError) as caught:
        call(*args)
    return str(caught.value)


def texts(parsed) -> list[str]:
    return [item.text for item in parsed.items]


# The definitions the parser repeats so that it needs no models


def test_the_control_characters_are_the_single_prompt_forms():
    assert parsing.CONTROL.pattern == CONTROL.pattern


def test_the_prompt_types_and_the_title_length_are_the_prompt_models():
    assert tuple(Prompt.Type.values) == parsing.PROMPT_TYPES
    assert Prompt._meta.get_field("title").max_length == parsing.TITLE_MAX


# Text paste: one prompt per line


def test_a_paste_gives_one_prompt_per_line_with_its_line_number():
    parsed = parse_text("  Write a haiku.  \r\n\r\nSummarize {report}.\n\t\nExplain recursion\n")

    assert parsed.format == "text"
    assert parsed.items == [
        Item(row=1, text="Write a haiku."), Item(row=3, text="Summarize {report}."),
        Item(row=5, text="Explain recursion"),
    ]  # fmt: skip
    assert parsed.empty_rows == 2  # lines 2 and 4; the final newline ends line 5, it is not a line
    assert parsed.skipped == []
    assert parsed.columns == []


def test_tabs_inside_a_line_are_kept():
    assert texts(parse_text("Name\tValue: fill in {value}.")) == ["Name\tValue: fill in {value}."]


# Text paste: blocks between lines of ---


def test_a_line_of_dashes_makes_the_blocks_between_such_lines_the_prompts():
    paste = (
        "\n"  # line 1
        "You are a reviewer.\n"  # line 2
        "\n"
        "  Review this code:\n"  # line 4: indentation inside a prompt is kept
        "{code}\n"
        "  ---  \n"  # line 6: surrounding spaces allowed
        "\n"
        "\n"
        "Write a limerick.\n"  # line 9
        "---\n"
        "---\n"  # two separators in a row: no block between them
        " \n"
        "---\n"  # a block of blank lines: one empty row
        "--- not a separator\n"  # line 14
        "Last one."
    )
    parsed = parse_text(paste)

    assert parsed.items == [
        Item(row=2, text="You are a reviewer.\n\n  Review this code:\n{code}"),
        Item(row=9, text="Write a limerick."),
        Item(row=14, text="--- not a separator\nLast one."),
    ]
    assert parsed.empty_rows == 1


def test_blocks_are_compared_after_crlf_and_surrounding_whitespace():
    parsed = parse_text("Line one\r\nline two\r\n---\n\n  Line one\nline two  \n---\nOther")

    assert [(item.row, item.duplicate_of) for item in parsed.items] == [(1, None), (5, 1), (8, None)]
    assert parsed.items[0].text == "Line one\nline two"


# Duplicates


def test_later_copies_of_a_prompt_point_at_the_first():
    parsed = parse_text("alpha\nbeta\n  alpha\nalpha\nAlpha\nbeta\t")

    assert [(item.row, item.text, item.duplicate_of) for item in parsed.items] == [
        (1, "alpha", None), (2, "beta", None), (3, "alpha", 1), (4, "alpha", 1), (5, "Alpha", None),
        (6, "beta", 2),
    ]  # fmt: skip


def test_a_skipped_row_is_not_the_first_of_its_duplicates(settings):
    settings.PROMPT_MAX_CHARS = 100
    parsed = parse_text("fine\x07\nfine\nfine")

    assert parsed.skipped == [Skipped(1, "contains a control character (U+0007) at column 5", "control")]
    assert [(item.row, item.duplicate_of) for item in parsed.items] == [(2, None), (3, 2)]


# Skips: too long, control characters, unknown types


def test_a_prompt_over_the_limit_is_skipped_with_its_length(settings):
    settings.PROMPT_MAX_CHARS = 100
    parsed = parse_text("x" * 100 + "\n" + "y" * 12_345 + "\n  " + "z" * 100 + "  ")

    assert texts(parsed) == ["x" * 100, "z" * 100]  # the limit itself is allowed; spaces around do not count
    assert parsed.skipped == [Skipped(2, "12,345 characters; the limit is 100", "too_long")]


def test_a_control_character_is_named_with_its_column_in_a_line():
    parsed = parse_text("Fine prompt\nA bell rings \x07 here\nAlso fine")

    assert parsed.skipped == [Skipped(2, "contains a control character (U+0007) at column 14", "control")]
    assert texts(parsed) == ["Fine prompt", "Also fine"]


def test_a_control_character_at_the_edge_is_found_before_stripping():
    # str.strip() counts U+001C..U+001F as whitespace: stripping first would hide this one.
    parsed = parse_text("Trailing unit separator\x1f\nok")

    assert parsed.skipped == [Skipped(1, "contains a control character (U+001F) at column 24", "control")]


def test_a_control_character_in_a_block_is_named_by_the_pastes_line_and_column():
    parsed = parse_text("First\n---\n\nSecond block\nhas \x0c a form feed\n---\nThird")

    assert parsed.skipped == [
        Skipped(4, "contains a control character (U+000C) at line 5, column 5", "control")
    ]


def test_the_too_long_check_comes_before_the_control_check(settings):
    settings.PROMPT_MAX_CHARS = 100
    parsed = parse_text("\x00" * 101 + "\nok")

    assert parsed.skipped == [Skipped(1, "101 characters; the limit is 100", "too_long")]


def test_csv_rows_with_an_unknown_type_are_skipped_and_known_types_are_read_without_case():
    data = b"prompt,type\nOne,Creative\nTwo, coding \nThree,creatve\nFour,\n"
    parsed = parse_file("batch.csv", data)

    assert [(item.row, item.type) for item in parsed.items] == [(2, "creative"), (3, "coding"), (5, "")]
    reason = "unknown type “creatve”: use one of general, creative, technical, analytical, coding, data"
    assert parsed.skipped == [Skipped(4, reason, "bad_type")]
    assert parsed.notes == ()


def test_a_type_column_that_holds_no_prompt_type_is_ignored_and_said_so():
    data = b"prompt,type\nOne,TEXT\nTwo,IMAGE\nThree,TEXT\n"
    parsed = parse_file("batch.csv", data)

    assert [(item.text, item.type) for item in parsed.items] == [("One", ""), ("Two", ""), ("Three", "")]
    assert parsed.skipped == []
    assert parsed.notes == (
        "The “type” column was ignored: its values (“TEXT”, “IMAGE”) are not prompt types (general, "
        "creative, technical, analytical, coding, data), so every prompt gets the batch's type.",
    )


# CSV


def test_csv_reads_prompt_title_type_and_tags_and_ignores_other_columns():
    data = (
        b"Notes, Prompt ,TITLE,Type,tags\r\n"
        b'ignored,"Write a poem about {season}.",Seasons,creative," poetry, seasons,,poetry "\r\n'
        b'x,"Line one\r\nline two, with a comma and ""quotes""",,,\r\n'
        b"y,Third prompt,,general,\r\n"
    )
    parsed = parse_file("prompts.CSV", data)

    assert parsed.format == "csv"
    assert parsed.columns == ["Notes", " Prompt ", "TITLE", "Type", "tags"]
    assert parsed.items == [
        Item(2, "Write a poem about {season}.", "Seasons", "creative", ("poetry", "seasons")),
        Item(3, 'Line one\nline two, with a comma and "quotes"'),
        Item(5, "Third prompt", type="general"),  # the record above spans lines 3 and 4
    ]


def test_csv_title_falls_back_to_act_and_is_one_line_of_at_most_120_characters():
    long_act = "An actor " * 20
    data = f'act,prompt,title\nLinux Terminal,First,\n"{long_act}",Second,\nIgnored act,Third,"Own\n title"\n'
    parsed = parse_file("prompts.csv", data.encode())

    assert [item.title for item in parsed.items] == ["Linux Terminal", long_act.strip()[:120], "Own title"]
    assert len(parsed.items[1].title) == 120


def test_csv_empty_rows_and_short_rows_are_counted_not_listed():
    data = b"title,prompt\nA,First\n\nB\nC,\nD,  \n,Second\n"
    parsed = parse_file("prompts.csv", data)

    assert [(item.row, item.text, item.title) for item in parsed.items] == [
        (2, "First", "A"),
        (7, "Second", ""),
    ]
    assert parsed.empty_rows == 4  # the blank line, the row with one field, the two empty prompts
    assert parsed.skipped == []


def test_a_csv_field_larger_than_the_csv_modules_default_limit_is_read(settings):
    settings.PROMPT_MAX_CHARS = 1_000_000
    before = csv.field_size_limit(131_072)  # the csv module's default; other tests raise it
    try:
        parsed = parse_file("big.csv", f"prompt\n{'w' * 200_000}\nsmall\n".encode())
    finally:
        csv.field_size_limit(before)

    assert [len(text) for text in texts(parsed)] == [200_000, 5]


def test_a_csv_without_a_prompt_column_is_refused_with_the_columns_found():
    message = refused(parse_file, "prompts.csv", b"act, text \nLinux Terminal,Act as a terminal\n")

    assert message == (
        "No “prompt” column: the columns found are “act”, “text”. Rename the column that holds the prompts "
        "to “prompt”."
    )


@pytest.mark.parametrize(("separator", "name"), [(b";", "semicolons"), (b"\t", "tabs")])
def test_a_csv_separated_by_semicolons_or_tabs_is_refused_with_what_to_do(separator, name):
    message = refused(
        parse_file, "prompts.csv", separator.join([b"title", b"prompt"]) + b"\nt" + separator + b"p\n"
    )

    assert message.startswith("No “prompt” column: the columns found are “title")
    assert message.endswith(
        f"Rename the column that holds the prompts to “prompt”. The columns look separated by {name}: save "
        "the file as CSV with commas between them."
    )


def test_a_csv_with_two_prompt_columns_is_refused():
    message = refused(parse_file, "prompts.csv", b"prompt,title,Prompt\na,b,c\n")

    assert message == (
        "Two columns are named “prompt” (columns 1 and 3). Rename or remove one of them, so that it is clear "
        "which to read."
    )


def test_a_csv_quote_never_closed_is_refused_with_the_line_where_it_opens():
    data = b'prompt\nfirst\n"second, quoted\nand never closed\nthird\n'
    message = refused(parse_file, "prompts.csv", data)

    assert message == (
        "The CSV is malformed: a quoted field in the record that starts at line 3 is never closed (the file "
        'ends inside it). Add the closing quote (") and upload it again.'
    )


def test_a_csv_quote_followed_by_text_is_refused_with_its_line():
    message = refused(parse_file, "prompts.csv", b'prompt,title\nfine,one\n"quoted" then text,two\n')

    assert message.startswith("The CSV is malformed at line 3 (',' expected after '\"'). Check the quotes")
    assert '("")' in message


def test_a_csv_with_only_a_header_or_nothing_is_refused():
    assert refused(parse_file, "p.csv", b"prompt,title\n\n,x\n") == (
        "There is nothing to optimize: the file holds no prompts (2 empty rows). The first line names the "
        "columns; one must be “prompt” (title, type and tags are optional)."
    )
    assert refused(parse_file, "p.csv", b"\n\n").startswith(
        "There is nothing to optimize: the CSV file is empty."
    )


def test_a_utf8_byte_order_mark_is_dropped():
    parsed = parse_file("prompts.csv", codecs.BOM_UTF8 + b"prompt\nHello\n")

    assert parsed.columns == ["prompt"]
    assert texts(parsed) == ["Hello"]


# JSON


def test_json_reads_strings_and_objects_with_their_index_as_row():
    data = json.dumps([
        "  Plain string prompt ",
        {"prompt": "Object prompt\r\nline two", "title": "T", "type": "DATA", "tags": [" a", "b", "a", ""]},
        "",
        {"prompt": "Act prompt", "act": "Linux Terminal", "tags": "x, y,,x", "other": 1},
        {"prompt": "Nulls", "title": None, "type": None, "tags": None},
    ]).encode()  # fmt: skip
    parsed = parse_file("batch.json", data)

    assert parsed.format == "json"
    assert parsed.items == [
        Item(1, "Plain string prompt"),
        Item(2, "Object prompt\nline two", "T", "data", ("a", "b")),
        Item(4, "Act prompt", "Linux Terminal", tags=("x", "y")),
        Item(5, "Nulls"),
    ]
    assert parsed.empty_rows == 1


def test_json_other_than_an_array_is_refused():
    message = refused(parse_file, "batch.json", b'{"prompt": "x"}')

    assert message == (
        'The JSON holds an object; it must be an array of prompts, such as ["first prompt", "second '
        'prompt"]. Each must be a string (the prompt) or an object with "prompt", such as {"prompt": "..."}.'
    )


@pytest.mark.parametrize(
    ("value", "index", "says"),
    [
        (["ok", 3], 2, ' is a number. Each must be a string (the prompt) or an object with "prompt"'),
        (["ok", ["nested"]], 2, " is an array."),
        ([{"text": "x", "title": "t"}], 1,
         " is an object without “prompt” (its keys: “text”, “title”). Put each prompt's text in “prompt”."),
        (["a", "b", {"prompt": None}], 3, ": “prompt” is null; it must be the prompt's text."),
        ([{"prompt": "x", "title": 5}], 1, ": “title” is a number; it must be a string."),
        ([{"prompt": "x", "type": True}], 1, ": “type” is the value true; it must be a string."),
        ([{"prompt": "x", "tags": ["a", 1]}], 1,
         ": “tags” must be a list of strings or one string with commas between the tags"),
    ],
)  # fmt: skip
def test_json_of_the_wrong_shape_is_refused_naming_the_element(value, index, says):
    message = refused(parse_file, "batch.json", json.dumps(value).encode())

    assert message.startswith(f"Element {index} of the array (counting from 1){says}")


def test_malformed_json_is_refused_with_its_line_and_column():
    message = refused(parse_file, "batch.json", b'[\n  "one",\n  "two"\n  "three"\n]')

    assert message == (
        "The JSON is malformed at line 4, column 3: Expecting ',' delimiter. Fix it there and upload it "
        "again."
    )


def test_json_lines_named_json_are_refused_with_a_hint():
    message = refused(parse_file, "batch.json", b'{"prompt": "one"}\n{"prompt": "two"}\n')

    assert message.startswith("The JSON is malformed at line 2, column 1: Extra data.")
    assert message.endswith("It looks like JSON Lines (one JSON value per line): name the file .jsonl.")


def test_json_nested_too_deeply_is_refused_with_a_message():
    message = refused(parse_file, "batch.json", b"[" * 100_000 + b"]" * 100_000)

    assert message.startswith("The JSON is nested too deeply to read. It must be one array of prompts.")


def test_an_empty_json_array_is_nothing_to_optimize():
    assert refused(parse_file, "batch.json", b"[]").startswith(
        "There is nothing to optimize: the file holds no"
    )


# JSON Lines


def test_json_lines_read_strings_and_objects_with_their_line_number():
    data = (
        b'"First"\n\n{"prompt": "Second", "title": "Two"}\r\n   \n"   "\n{"prompt": "Third", "tags": "t"}\n'
    )
    parsed = parse_file("batch.ndjson", data)

    assert parsed.format == "jsonl"
    assert parsed.items == [Item(1, "First"), Item(3, "Second", "Two"), Item(6, "Third", tags=("t",))]
    assert parsed.empty_rows == 3


def test_a_bad_json_line_is_refused_with_its_line_and_column():
    message = refused(parse_file, "batch.jsonl", b'"ok"\n{"prompt": "two",}\n')

    assert message == (
        "Line 2 is not valid JSON (column 17: Illegal trailing comma before end of object). Each line must "
        'be one JSON value. Each must be a string (the prompt) or an object with "prompt", such as '
        '{"prompt": "..."}.'
    )


def test_a_json_line_of_the_wrong_shape_is_refused_with_its_line():
    assert refused(parse_file, "batch.jsonl", b'"ok"\n\n[1, 2]\n').startswith(
        "Line 3 is an array. Each must be"
    )
    assert refused(parse_file, "batch.jsonl", b'{"title": "x"}').startswith(
        "Line 1 is an object without “prompt” (its keys: “title”)."
    )


# The format: from the extension, else sniffed


@pytest.mark.parametrize(
    ("name", "data", "format_"),
    [
        ("a.csv", b"prompt\nx\n", "csv"), ("a.JSON", b'["x"]', "json"), ("a.jsonl", b'"x"', "jsonl"),
        ("a.ndjson", b'"x"', "jsonl"), ("a.txt", b"prompt,title\nx,y\n", "text"),  # the extension decides
        ("pasted", b'  ["x"]', "json"), ("pasted.dat", b'{"prompt": "x"}\n', "jsonl"),
        ("", b"Title, PROMPT\nt,x\n", "csv"), ("notes.md", b"Write a poem.\nprompt me\n", "text"),
    ],
)  # fmt: skip
def test_the_format_comes_from_the_extension_or_else_the_content(name, data, format_):
    assert parse_file(name, data).format == format_


def test_an_object_written_over_several_lines_is_sniffed_as_json_and_refused_as_such():
    message = refused(parse_file, "upload", b'{\n  "prompts": ["one", "two"]\n}\n')

    assert message.startswith("The JSON holds an object; it must be an array of prompts")


# Encodings


def test_windows_1252_is_refused_with_the_byte_its_place_and_what_to_do():
    data = "prompt\nfirst\nA café au lait\n".encode("cp1252")

    assert refused(parse_file, "prompts.csv", data) == (
        "The file is not UTF-8 (byte 0xE9 at line 3, column 6); it looks like Windows-1252 or Latin-1. Save "
        "it as UTF-8 and upload it again."
    )


def test_the_column_of_a_bad_byte_counts_the_characters_before_it():
    data = "Naïve prompt\n€ then ".encode() + b"\xfc ber\n"

    assert refused(parse_file, "p.txt", data).startswith(
        "The file is not UTF-8 (byte 0xFC at line 2, column 8);"
    )


def test_a_byte_windows_1252_lacks_is_called_latin_1():
    assert "it looks like Latin-1 (ISO-8859-1) or another single-byte encoding." in refused(
        parse_file, "p.txt", b"caf\xe9 \x81\n"
    )


def test_a_legacy_chinese_encoding_is_not_called_latin_1():
    message = refused(parse_file, "p.txt", "写一首关于秋天的诗。\n".encode("gbk"))

    assert "it looks like a multi-byte legacy encoding such as GBK, Shift-JIS or EUC-KR." in message


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ("prompt\nx\n".encode("utf-16"), "it starts with the byte-order mark of UTF-16 (little-endian)"),
        ("prompt\nx\n".encode("utf-16-be"), "every other byte is NUL, so it looks like UTF-16 (big-endian)"),
        (
            "prompt\nx\n".encode("utf-16-le"),
            "every other byte is NUL, so it looks like UTF-16 (little-endian)",
        ),
        ("prompt\nx\n".encode("utf-32"), "it starts with the byte-order mark of UTF-32 (little-endian)"),
        ("prompt\nx\n".encode("utf-32-be"), "most of its bytes are NUL, so it looks like UTF-32"),
    ],
)
def test_utf16_and_utf32_are_told_even_when_they_hold_only_ascii(data, says):
    assert refused(parse_file, "p.csv", data) == (
        f"The file is not UTF-8: {says}. Save it as UTF-8 and upload it again."
    )


# Refusals of the whole batch


def test_more_items_than_the_limit_are_refused_counting_after_skips(settings):
    settings.BATCH_MAX_ITEMS = 3
    assert texts(parse_text("a\nb\n\nc\nbad\x01\n")) == ["a", "b", "c"]  # the skip does not count

    assert refused(parse_text, "a\nb\nc\na") == (
        "The batch has 4 prompts to optimize; the limit is 3 (BATCH_MAX_ITEMS). Split it into batches of at "
        "most 3."
    )


def test_the_default_item_limit_is_5000(settings):
    del settings.BATCH_MAX_ITEMS
    parse_text("\n".join(f"p{n}" for n in range(5000)))

    assert "5,001 prompts to optimize; the limit is 5,000" in refused(
        parse_text, "\n".join(f"p{n}" for n in range(5001))
    )


def test_input_larger_than_the_byte_limit_is_refused_before_it_is_read(settings):
    settings.BATCH_MAX_BYTES = 100
    assert texts(parse_text("é" * 50)) == ["é" * 50]  # 100 bytes

    assert refused(parse_text, "é" * 51) == (
        "The text is 102 bytes (0.0 MiB); the limit is 100 bytes (0.0 MiB, BATCH_MAX_BYTES). Split it into "
        "smaller batches."
    )
    # Not UTF-8 either: the size is what is told, so nothing was decoded.
    assert refused(parse_file, "p.csv", b"\xff" * 101).startswith(
        "The file is 101 bytes (0.0 MiB); the limit"
    )


def test_the_default_byte_limit_is_10_mib(settings):
    del settings.BATCH_MAX_BYTES

    assert refused(parse_file, "p.txt", b"x" * (10 * 1024 * 1024 + 1)) == (
        "The file is 10,485,761 bytes (10.0 MiB); the limit is 10,485,760 bytes (10.0 MiB, BATCH_MAX_BYTES). "
        "Split it into smaller batches."
    )


def test_an_empty_paste_is_nothing_to_optimize():
    assert refused(parse_text, "") == (
        "There is nothing to optimize: the text holds no prompts. Put one prompt per line, or separate "
        "prompts of several lines with a line holding only ---."
    )
    assert refused(parse_text, " \n\n\t\n").startswith(
        "There is nothing to optimize: the text holds no prompts (3 empty rows)."
    )


def test_when_every_prompt_is_skipped_the_message_names_the_rows(settings):
    settings.PROMPT_MAX_CHARS = 100
    paste = "\n".join(["", "x" * 150, "bell\x07", *[f"tab\x0b{n}" for n in range(5)]])

    assert refused(parse_text, paste) == (
        "There is nothing to optimize: every prompt was skipped. Row 2: 150 characters; the limit is 100. "
        "Row 3: contains a control character (U+0007) at column 5. "
        "Row 4: contains a control character (U+000B) at column 4. "
        "Row 5: contains a control character (U+000B) at column 4. "
        "Row 6: contains a control character (U+000B) at column 4. "
        "And 2 more. Fix these rows and try again."
    )


# The real prompts: what is skipped, found again by a plain reading of the CSV


@pytest.fixture(scope="module")
def real_csv() -> bytes:
    if not PROMPTS_CSV.parent.exists():
        pytest.skip("../shared/data is absent")
    return PROMPTS_CSV.read_bytes()


def plain_reading(data: bytes) -> tuple[list[tuple[int, str]], list[tuple[int, str, str]]]:
    """Each row's (physical start line, act, prompt), and the rows the rules skip, from csv.DictReader."""
    csv.field_size_limit(sys.maxsize)
    reader = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
    lines = data.split(b"\n")
    rows, skips, end = [], [], 1
    for record in reader:
        start, end = end + 1, reader.line_num
        # The start line, checked another way: the file's own line there begins with this row's act.
        act = record["act"].split("\n")[0].replace('"', '""')
        assert lines[start - 1].decode().startswith((act, f'"{act}')), start
        rows.append((start, record["act"], record["prompt"]))
        text = record["prompt"].replace("\r\n", "\n").strip()
        if len(text) > 50_000:
            skips.append((start, "too_long", f"{len(text):,} characters; the limit is 50,000"))
        elif match := CONTROL.search(record["prompt"]):
            skips.append((start, "control", f"U+{ord(match.group()):04X}"))
    return rows, skips


def test_the_real_prompts_csv_skips_exactly_the_overlong_and_the_control_character_rows(real_csv, settings):
    settings.PROMPT_MAX_CHARS = 50_000
    rows, expected_skips = plain_reading(real_csv)
    parsed = parse_file("awesome-chatgpt-prompts.csv", real_csv)

    assert len(rows) == 1529
    assert [(skip.row, skip.kind) for skip in parsed.skipped] == [
        (row, kind) for row, kind, _ in expected_skips
    ]
    assert [skip.row for skip in parsed.skipped if skip.kind == "too_long"] == [30172, 48211, 53422, 64327]
    assert [skip.reason for skip in parsed.skipped if skip.kind == "too_long"] == [
        "110,549 characters; the limit is 50,000", "68,596 characters; the limit is 50,000",
        "144,260 characters; the limit is 50,000", "51,232 characters; the limit is 50,000",
    ]  # fmt: skip
    controls = [skip for skip in parsed.skipped if skip.kind == "control"]
    assert len(controls) == 11
    assert all(re.fullmatch(r"contains a control character \(U\+001F\) at line \d+, column 1 of the prompt",
                            skip.reason) for skip in controls)  # fmt: skip
    assert parsed.empty_rows == 0
    assert len(parsed.items) == 1529 - 15


def test_the_real_prompts_csv_keeps_every_other_row_with_its_act_as_title_and_no_type(real_csv, settings):
    settings.PROMPT_MAX_CHARS = 50_000
    rows, skips = plain_reading(real_csv)
    skipped_rows = {row for row, _, _ in skips}
    parsed = parse_file("awesome-chatgpt-prompts.csv", real_csv)

    kept = [(start, act, prompt) for start, act, prompt in rows if start not in skipped_rows]
    assert [(item.row, item.title, item.text) for item in parsed.items] == [
        (start, " ".join(act.split())[:120], prompt.replace("\r\n", "\n").strip())
        for start, act, prompt in kept
    ]
    assert {item.type for item in parsed.items} == {""}  # its type column is TEXT/STRUCTURED/IMAGE
    assert parsed.notes[0].startswith(
        "The “type” column was ignored: its values (“TEXT”, “STRUCTURED”, “IMAGE”)"
    )
    assert parsed.columns == ["act", "prompt", "for_devs", "type", "contributor"]

    first_row: dict[str, int] = {}
    expected_duplicates = []
    for start, _, prompt in kept:
        first = first_row.setdefault(prompt.replace("\r\n", "\n").strip(), start)
        if first != start:
            expected_duplicates.append((start, first))
    assert [
        (item.row, item.duplicate_of) for item in parsed.items if item.duplicate_of
    ] == expected_duplicates
    assert len(expected_duplicates) == 18


# What a reviewer found: input that reached the database or a page unread


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ('["fine", "bad \\ud800 one"]', "Element 2"),
        ('[{"prompt": "a", "title": "t\\udfff"}]', "“title”"),
        ('[{"prompt": "a", "tags": ["x\\ud83d"]}]', "“tags”"),
        ('[{"prompt": "a", "type": "general"}, {"prompt": "b", "type": "gen\\ud800"}]', "“type”"),
    ],
)
def test_an_unpaired_surrogate_escape_in_json_is_refused(data, where):
    with pytest.raises(BatchInputError, match="unpaired surrogate") as refused:
        parse_file("p.json", data.encode())
    assert where in str(refused.value)
    str(refused.value).encode("utf-8")  # the message itself can be shown


def test_a_key_with_a_surrogate_or_nul_is_quoted_safely():
    with pytest.raises(BatchInputError) as refused:
        parse_file("p.json", b'[{"text\\ud800": "a", "x\\u0000": 1}]')
    message = str(refused.value)
    message.encode("utf-8")
    assert "\x00" not in message and "\\u0000" in message and "\\ud800" in message


def test_a_quoted_unknown_type_with_a_nul_is_stored_without_it():
    parsed = parse_file("p.csv", b'prompt,type\nFirst prompt,general\nSecond prompt,"gen\x00x"\n')
    (skipped,) = parsed.skipped
    assert skipped.kind == "bad_type" and "\x00" not in skipped.reason and "\\u0000" in skipped.reason


@pytest.mark.parametrize("name", ["p.json", "p.jsonl"])
def test_a_number_too_long_to_read_is_refused(name):
    with pytest.raises(BatchInputError, match="could not be read"):
        parse_file(
            name, ("[" + "9" * 5000 + "]").encode() if name.endswith("json") else ("9" * 5000).encode()
        )


def test_tags_follow_the_single_prompts_limits_and_lose_control_characters():
    rows = [
        {"prompt": "Eleven tags", "tags": [f"t{n}" for n in range(11)]},
        {"prompt": "One long tag", "tags": ["x" * 31]},
        {"prompt": "Fine tags", "tags": ["po\x00etry", " seasons ", "poetry"]},
    ]
    parsed = parse_file("p.json", json.dumps(rows).encode())

    assert [(s.row, s.kind) for s in parsed.skipped] == [(1, "bad_tags"), (2, "bad_tags")]
    assert "at most 10 tags of at most 30 characters" in parsed.skipped[0].reason
    assert parsed.items[0].tags == ("po etry", "seasons", "poetry")
