"""What an optimization must carry over verbatim: placeholders, quoted literals, numbers, URLs and
code blocks of the original prompt.

Placeholders come in every style people use: ``{var}``, ``{{var}}``, ``${var}`` (with a default,
``${Position:Software Developer}``), ``[var]``, ``<var>``, `` `var` `` and ``$var``. Extraction is
deliberately generous: a span wrongly taken for a placeholder only costs being kept as it is.
"""

import bisect
import functools
import re
from dataclasses import dataclass

# Longest first: a code block may contain anything else; {{x}} must not be read as {x}.
# Each pattern starts with the character or class its matches start with, so that ``re`` skips
# straight to the places where it occurs (a lookbehind or \b first makes it try every position).
# A condition on the character before the match is a lookbehind just after that first character,
# reading the same two characters as the written form (in the comment) does.
PATTERNS: tuple[tuple[str, re.Pattern], ...] = (
    ("code block", re.compile(r"```.*?```", re.DOTALL)),
    ("marker", re.compile(r"^[ \t]*\d{1,3}[.)](?=[ \t])", re.MULTILINE)),  # "1. " starts a list item
    ("url", re.compile(r"h(?<!\wh)ttps?://[^\s<>\"'`)\]]+")),  # \bhttps?://...
    ("placeholder", re.compile(r"\{\{[^{}\n]{1,2000}\}\}")),  # unambiguous: may be long
    ("placeholder", re.compile(r"\$\{[^{}\n]{1,2000}\}")),  # ${name:a long default}
    ("placeholder", re.compile(r"\{(?<![{$]\{)[^{}\n\"]{1,80}\}(?!\})")),  # (?<![{$])\{...
    ("placeholder", re.compile(r"`[^`\n]{1,80}`")),
    ("placeholder", re.compile(r"\[[^\[\]\n]{1,60}\](?!\()")),
    ("placeholder", re.compile(r"<[A-Za-z_][\w .:-]{0,60}>")),
    ("placeholder", re.compile(r"\$(?<![\w$]\$)[A-Za-z_]\w{0,60}")),  # (?<![\w$])\$...
    ("quoted", re.compile(r"\"[^\"\n]{1,200}\"|“[^”\n]{1,200}”|«[^»\n]{1,200}»")),
    ("number", re.compile(r"\d(?<![\w.]\d)\d*(?:[.,]\d+)*(?:%|\b)")),  # (?<![\w.])\d+...
)


@dataclass(frozen=True)
class Span:
    kind: str
    text: str


def protected_ranges(text: str) -> list[tuple[int, int, Span]]:
    """Every protected occurrence in ``text`` as (start, end, span), in order, none overlapping."""
    return list(_ranges(text))


@functools.lru_cache(maxsize=64)
def _ranges(text: str) -> tuple[tuple[int, int, Span], ...]:
    """The search itself, once per text: each stage of a run (and the checklist, twice) asks for the
    same text. Its ``cache_info().misses`` counts the searches."""
    taken: list[tuple[int, int, Span]] = []  # kept sorted by start; the spans never overlap
    starts: list[int] = []  # the starts of ``taken``, for the bisection
    for kind, pattern in PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            index = bisect.bisect_left(starts, start)
            if (index and taken[index - 1][1] > start) or (index < len(taken) and starts[index] < end):
                continue  # inside a longer span already kept (a number inside a URL, say)
            taken.insert(index, (start, end, Span(kind, match.group())))
            starts.insert(index, start)
    return tuple(item for item in taken if item[2].kind != "marker")


def protected_spans(text: str) -> list[Span]:
    """The spans of ``text`` to keep verbatim, in order of appearance, each text once."""
    seen: set[str] = set()
    found: list[Span] = []
    for _, _, span in _ranges(text):
        if span.text not in seen:
            seen.add(span.text)
            found.append(span)
    return found


def missing_spans(original: str, candidate: str, spans: list[Span] | None = None) -> list[Span]:
    """The protected spans of ``original`` that ``candidate`` lost."""
    spans = protected_spans(original) if spans is None else spans
    return [span for span in spans if span.text not in candidate]
