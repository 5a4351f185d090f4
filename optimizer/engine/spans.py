"""What an optimization must carry over verbatim: placeholders, quoted literals, numbers, URLs and
code blocks of the original prompt.

Placeholders come in every style people use: ``{var}``, ``{{var}}``, ``${var}`` (with a default,
``${Position:Software Developer}``), ``[var]``, ``<var>``, `` `var` `` and ``$var``. Extraction is
deliberately generous: a span wrongly taken for a placeholder only costs being kept as it is.
"""

import re
from dataclasses import dataclass

# Longest first: a code block may contain anything else; {{x}} must not be read as {x}.
PATTERNS: tuple[tuple[str, re.Pattern], ...] = (
    ("code block", re.compile(r"```.*?```", re.DOTALL)),
    ("url", re.compile(r"\bhttps?://[^\s<>\"'`)\]]+")),
    ("placeholder", re.compile(r"\{\{[^{}\n]{1,2000}\}\}")),  # unambiguous: may be long
    ("placeholder", re.compile(r"\$\{[^{}\n]{1,2000}\}")),  # ${name:a long default}
    ("placeholder", re.compile(r"(?<![{$])\{[^{}\n\"]{1,80}\}(?!\})")),
    ("placeholder", re.compile(r"`[^`\n]{1,80}`")),
    ("placeholder", re.compile(r"\[[^\[\]\n]{1,60}\](?!\()")),
    ("placeholder", re.compile(r"<[A-Za-z_][\w .:-]{0,60}>")),
    ("placeholder", re.compile(r"(?<![\w$])\$[A-Za-z_]\w{0,60}")),
    ("quoted", re.compile(r"\"[^\"\n]{1,200}\"|“[^”\n]{1,200}”|«[^»\n]{1,200}»")),
    ("number", re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:%|\b)")),
)


@dataclass(frozen=True)
class Span:
    kind: str
    text: str


def protected_spans(text: str) -> list[Span]:
    """The spans of ``text`` to keep verbatim, in order of appearance, each text once."""
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, Span]] = []
    seen: set[str] = set()
    for kind, pattern in PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < other_end and other_start < end for other_start, other_end in taken):
                continue  # inside a longer span already kept (a number inside a URL, say)
            taken.append((start, end))
            if match.group() not in seen:
                seen.add(match.group())
                found.append((start, Span(kind, match.group())))
    return [span for _, span in sorted(found, key=lambda item: item[0])]


def missing_spans(original: str, candidate: str, spans: list[Span] | None = None) -> list[Span]:
    """The protected spans of ``original`` that ``candidate`` lost."""
    spans = protected_spans(original) if spans is None else spans
    return [span for span in spans if span.text not in candidate]
