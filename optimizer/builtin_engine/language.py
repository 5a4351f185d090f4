"""Which natural language a prompt is written in, by py3langid (langid.py's model, shipped inside the
package: it works offline and is accurate on short texts).

Code, placeholders, URLs and JSON keys say nothing about the author's language, so they are taken
out before classifying. A guess the model is not sure of, or a text too short to tell, is
"unknown": the engine then adds no prose of its own.
"""

import functools
import re

UNKNOWN = "unknown"
SURE = 0.9  # the whole model's probability that settles it
LIKELY = 0.45  # among the common languages only, for a text too short for the whole model
# The characters classified: the model's time grows with them, its answer settles long before (the
# first 2,000 give the same language as the first 6,000 for every prompt of the 1,529 in the CSV; a
# long prompt spent 1.6 ms here, a tenth of its optimization).
SAMPLE = 2000

NAMES = {
    "en": "English", "es": "Spanish", "fr": "French", "de": "German", "pt": "Portuguese", "it": "Italian",
    "zh": "Chinese", "ja": "Japanese", "ru": "Russian", "nl": "Dutch", "tr": "Turkish", "pl": "Polish",
    "ko": "Korean", "ar": "Arabic", "hi": "Hindi", "uk": "Ukrainian", "sv": "Swedish", "da": "Danish",
    "no": "Norwegian", "fi": "Finnish", "cs": "Czech", "el": "Greek", "he": "Hebrew", "id": "Indonesian",
    "vi": "Vietnamese", "th": "Thai", "fa": "Persian", "ro": "Romanian", "hu": "Hungarian",
}  # fmt: skip
# The languages the engine writes in (its phrases exist in each); any other gets questions only.
WRITTEN = ("en", "es", "fr", "de", "pt", "it", "zh", "ja", "ru")
COMMON = (*WRITTEN, "nl", "tr", "pl", "uk", "ko", "ar", "hi", "sv", "id", "vi")

NOISE = re.compile(
    r"```.*?```|`[^`\n]*`|\{\{.*?\}\}|\$\{[^}]*\}|\{[^{}\n]*\}|\[[^\[\]\n]{0,60}\]|<[^<>\n]{0,60}>|"
    r"https?://\S+|\"[\w.-]+\"\s*:",
    re.DOTALL,
)
UKRAINIAN_LETTERS = re.compile(r"[іїєґІЇЄҐ]")
KANA = re.compile(r"[\u3040-\u30ff]")
HAN = re.compile(r"[\u4e00-\u9fff]")


@functools.cache
def _identifier(*, common_only: bool = False):
    """The whole model, or one that tells only the common languages apart. The second shares the
    first's tables (the tokenizer's 40 MB and the weights; set_languages keeps its own copy of the
    common languages' columns only): loading the model twice held ~85 MB more in every process that
    runs the built-in engine, each task worker included."""
    from py3langid import langid

    if not common_only:
        return langid.LanguageIdentifier.from_modelpath(langid.MODEL_DIR / langid.MODEL_FILE, norm_probs=True)
    full = _identifier()  # never restricted itself
    identifier = langid.LanguageIdentifier(
        full.nb_ptc, full.nb_pc, full.nb_classes, full.tk_nextmove, full.tk_output,
        norm_probs=True, tk_row=full.tk_row,
    )  # fmt: skip
    identifier.set_languages(COMMON)
    return identifier


@functools.lru_cache(maxsize=256)
def detect(text: str) -> str:
    """The ISO 639-1 code of ``text``'s language, or ``UNKNOWN``."""
    sample = NOISE.sub(" ", text[:SAMPLE])
    letters = sum(map(str.isalpha, sample))
    if letters < 3:
        return UNKNOWN
    # Scripts that settle it alone (the model confuses Chinese written with a few kana, and
    # Russian with Ukrainian on a short text).
    if KANA.search(sample):
        return "ja"
    if len(HAN.findall(sample)) > letters * 0.3:
        return "zh"
    code, confidence = _identifier().classify(sample)
    if confidence < SURE:
        code, confidence = _identifier(common_only=True).classify(sample)
        if confidence < LIKELY:
            # Unsure even then: a short text in plain ASCII letters is English far more often than not.
            return "en" if sample.isascii() else UNKNOWN
    if code == "uk" and not UKRAINIAN_LETTERS.search(sample):
        code = "ru"
    return code


def language_name(code: str) -> str:
    return NAMES.get(code, "an unrecognised language" if code == UNKNOWN else code)


def detect_language(text: str) -> str:
    """The language's English name ("English", "Russian"...), as the deconstruction reports it."""
    return language_name(detect(text))
