"""Which natural language a prompt is written in: by script, then by the commonest short words."""

import re

SCRIPTS: tuple[tuple[str, re.Pattern], ...] = (
    ("Japanese", re.compile(r"[\u3040-\u30ff]")),
    ("Korean", re.compile(r"[\uac00-\ud7af]")),
    ("Chinese", re.compile(r"[\u4e00-\u9fff]")),
    ("Russian", re.compile(r"[\u0400-\u04ff]")),
    ("Arabic", re.compile(r"[\u0600-\u06ff]")),
    ("Hebrew", re.compile(r"[\u0590-\u05ff]")),
    ("Greek", re.compile(r"[\u0370-\u03ff]")),
    ("Hindi", re.compile(r"[\u0900-\u097f]")),
    ("Thai", re.compile(r"[\u0e00-\u0e7f]")),
)

STOPWORDS: dict[str, frozenset[str]] = {
    "English": frozenset(
        [
            "the",
            "and",
            "you",
            "to",
            "of",
            "a",
            "is",
            "in",
            "that",
            "it",
            "for",
            "with",
            "be",
            "as",
            "this",
            "are",
            "your",
            "on",
            "i",
            "will",
        ]
    ),
    "Spanish": frozenset(
        [
            "el",
            "la",
            "de",
            "que",
            "y",
            "en",
            "los",
            "se",
            "del",
            "las",
            "un",
            "por",
            "con",
            "una",
            "para",
            "es",
            "como",
            "más",
            "pero",
        ]
    ),
    "French": frozenset(
        [
            "le",
            "la",
            "les",
            "de",
            "des",
            "et",
            "est",
            "en",
            "un",
            "une",
            "du",
            "que",
            "pour",
            "dans",
            "qui",
            "pas",
            "vous",
            "sur",
            "avec",
        ]
    ),
    "German": frozenset(
        [
            "der",
            "die",
            "das",
            "und",
            "ist",
            "nicht",
            "ein",
            "eine",
            "zu",
            "den",
            "mit",
            "sie",
            "ich",
            "auf",
            "für",
            "von",
            "dem",
            "des",
        ]
    ),
    "Portuguese": frozenset(
        [
            "o",
            "a",
            "os",
            "as",
            "de",
            "que",
            "e",
            "do",
            "da",
            "em",
            "um",
            "uma",
            "para",
            "com",
            "não",
            "por",
            "se",
            "na",
            "no",
            "você",
        ]
    ),
    "Italian": frozenset(
        [
            "il",
            "lo",
            "la",
            "di",
            "che",
            "e",
            "è",
            "un",
            "una",
            "per",
            "non",
            "sono",
            "con",
            "del",
            "della",
            "gli",
            "le",
            "si",
            "ma",
        ]
    ),
    "Dutch": frozenset(
        [
            "de",
            "het",
            "een",
            "en",
            "van",
            "is",
            "dat",
            "niet",
            "op",
            "te",
            "zijn",
            "voor",
            "met",
            "ik",
            "je",
            "die",
        ]
    ),
    "Turkish": frozenset(
        ["ve", "bir", "bu", "için", "da", "de", "ile", "ne", "gibi", "çok", "daha", "olarak", "sen", "ben"]
    ),
}
WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def detect_language(text: str) -> str:
    sample = text[:5000]
    letters = sum(1 for char in sample if char.isalpha()) or 1
    for name, pattern in SCRIPTS:
        if len(pattern.findall(sample)) / letters > 0.2:
            return name
    words = [word.lower() for word in WORD.findall(sample)]
    if not words:
        return "English"
    scores = {name: sum(1 for word in words if word in stops) for name, stops in STOPWORDS.items()}
    best = max(scores, key=scores.get)
    # English wins ties and near-ties: prompts mix English technical terms into other languages.
    if best != "English" and scores[best] <= scores["English"] * 1.2:
        return "English"
    return best if scores[best] else "English"
