"""Case-insensitive word patterns that Python's ``re`` scans quickly, matching exactly what they
match as written.

``re`` tries the alternatives of a group one after another at every position of the text, and it
can skip one on its first character only when that character is compared case-sensitively. A list
of 400 verbs compared case-insensitively therefore costs 400 tries wherever it may start. Grouped by
first letter (``write|explain|wait`` read as ``w(?:rite|ait)|explain``) it costs one try per letter
group, then one per word of the right letter.

Regrouping never changes a match: alternatives that start with letters of different case-insensitive
classes cannot both match at the same place, and those that start with the same letter keep their
order (``re`` takes the first alternative that leads to a match). Only a run of alternatives that
each start with a plain letter is regrouped; any other alternative (a group, a class, an escape, an
optional first letter) stays where it is, and the runs on either side of it are regrouped apart.
Lookarounds are copied as written.

A lookahead on the characters a match can start with goes in front of the whole pattern, and
inside each group of three alternatives or more (inside, so that a group that may be skipped still
can be): where the text holds none of them, ``re`` moves on after one test. It is put only where
those characters are plain to see, and it never rejects a place where a match starts.
"""

import re

AS_WRITTEN: dict[re.Pattern, str] = {}  # each pattern's source before regrouping, to read and to check it by
QUANTIFIERS = ("?", "*", "+", "{")
ZERO_WIDTH = ("\\b", "\\B", "\\A", "^")
CLASS_ESCAPES = ("\\d", "\\w", "\\s")
GROUP_LOOKAHEAD = 3  # alternatives a group needs for a lookahead to pay its own test


def case_insensitive(source: str, flags: int = 0) -> re.Pattern:
    """``re.compile(source, flags | re.IGNORECASE)``, its alternatives grouped by first letter and
    behind lookaheads on their first characters; ``AS_WRITTEN`` keeps the source as given."""
    if flags & re.VERBOSE:
        raise ValueError("a verbose pattern's spaces are not letters to regroup")
    written = source
    compiled = re.compile(_led(regrouped(source), alternatives=1), flags | re.IGNORECASE)
    AS_WRITTEN[compiled] = written
    return compiled


def _led(source: str, alternatives: int) -> str:
    """``source`` behind a lookahead on the characters its matches start with, when they are plain
    to see and it has at least that many alternatives."""
    starts = _starts(source)
    if not starts or len(_alternatives(source)) < alternatives:
        return source
    classes = sorted(start for start in starts if start.startswith("["))
    members = "".join(sorted(start for start in starts if not start.startswith("[")))
    return "(?=" + "|".join(([f"[{members}]"] if members else []) + classes) + ")(?:" + source + ")"


def regrouped(source: str) -> str:
    """``source`` with the alternatives of its top level and of each of its groups regrouped (and
    each group of ``GROUP_LOOKAHEAD`` alternatives or more led by a lookahead)."""
    alternatives = [_inner_regrouped(alternative) for alternative in _alternatives(source)]
    grouped, run = [], []
    for alternative in alternatives:
        if alternative[:1].isalpha() and alternative[1:2] not in QUANTIFIERS:
            run.append(alternative)
        else:
            grouped += _by_first_letter(run)
            run = []
            grouped.append(alternative)
    return "|".join(grouped + _by_first_letter(run))


def _by_first_letter(run: list[str]) -> list[str]:
    groups: dict[str, list[str]] = {}
    for alternative in run:
        groups.setdefault(alternative[0].lower(), []).append(alternative)
    return [
        members[0] if len(members) == 1 else members[0][0] + "(?:" + "|".join(m[1:] for m in members) + ")"
        for members in groups.values()
    ]


def _inner_regrouped(alternative: str) -> str:
    """One alternative, with the content of each group in it regrouped (lookarounds as written)."""
    out, position = [], 0
    while position < len(alternative):
        end = _token_end(alternative, position)
        if alternative[position:end] == "(":
            close = _group_end(alternative, position)
            head = _group_head(alternative, position)
            inner = alternative[position + len(head) : close]
            regroup = head in ("(", "(?:") or head.startswith("(?P<")
            out.append(head + (_led(regrouped(inner), GROUP_LOOKAHEAD) if regroup else inner) + ")")
            end = close + 1
        else:
            out.append(alternative[position:end])
        position = end
    return "".join(out)


def _group_head(source: str, start: int) -> str:
    """``(``, ``(?:``, ``(?P<name>``, ``(?=``...: what opens the group at ``start``."""
    if source.startswith("(?P<", start):
        return source[start : source.index(">", start) + 1]
    if source.startswith("(?", start):
        return source[start : start + 3]
    return "("


def _token_end(source: str, position: int) -> int:
    """Where the piece at ``position`` ends: an escape, a whole class, or one character."""
    if source[position] == "\\":
        return position + 2
    if source[position] == "[":
        position += 1
        if source[position] == "^":
            position += 1
        if source[position] == "]":
            position += 1  # a "]" first in a class is a literal
        while source[position] != "]":
            position += 2 if source[position] == "\\" else 1
        return position + 1
    return position + 1


def _group_end(source: str, start: int) -> int:
    """The position of the ")" that closes the group opened at ``start``."""
    depth, position = 0, start
    while True:
        if source[position] == "(":
            depth += 1
        elif source[position] == ")":
            depth -= 1
            if depth == 0:
                return position
        position = _token_end(source, position)


def _alternatives(source: str) -> list[str]:
    """``source`` split at its top-level ``|``."""
    parts, depth, start, position = [], 0, 0, 0
    while position < len(source):
        character = source[position]
        if character == "(":
            depth += 1
        elif character == ")":
            depth -= 1
        elif character == "|" and depth == 0:
            parts.append(source[start:position])
            start = position + 1
        position = _token_end(source, position)
    return [*parts, source[start:]]


def _starts(source: str) -> set[str] | None:
    """What a match of ``source`` starts with: characters and ``\\d``, ``\\w``, ``\\s`` (members of
    one class), and classes as written; or None when that is not plain: an alternative that may
    match nothing, a negated class, ``.``, or anything else this reading does not know."""
    found: set[str] = set()
    for alternative in _alternatives(source):
        starts = _alternative_starts(alternative)
        if starts is None:
            return None
        found |= starts
    return found


def _alternative_starts(alternative: str) -> set[str] | None:
    position = 0
    while position < len(alternative):
        end = _token_end(alternative, position)
        piece = alternative[position:end]
        if piece == "(":
            close = _group_end(alternative, position)
            head = _group_head(alternative, position)
            if head in ("(?=", "(?!", "(?<"):  # a lookaround consumes nothing: look past it
                position = close + 1
                continue
            if head not in ("(", "(?:") and not head.startswith("(?P<"):
                return None
            if alternative[close + 1 : close + 2] in ("?", "*", "{"):
                return None  # the group may match nothing
            return _starts(alternative[position + len(head) : close])
        if piece in ZERO_WIDTH:
            position = end
            continue
        if alternative[end : end + 1] in ("?", "*", "{"):
            return None
        if piece in CLASS_ESCAPES:
            return {piece}
        if piece.startswith("[") and not piece.startswith("[^"):
            return {piece}
        if piece.startswith("\\") and not piece[1].isalnum():
            return {piece}  # an escaped punctuation character, as written
        if (
            len(piece) == 1
            and piece not in ".$|)"
            and (piece.isalnum() or not piece.isascii() or piece in " ,;:'-")
        ):
            return {"\\" + piece if piece == "-" else piece}
        return None
    return None  # nothing in it consumes a character
