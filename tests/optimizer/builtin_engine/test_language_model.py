"""The language model is loaded once per process: the identifier restricted to the common languages
shares the whole model's tables (a second load held ~85 MB more in every worker), and tells the
same languages as one loaded on its own and restricted."""

from py3langid import langid

from optimizer.builtin_engine import language

TEXTS = [
    "Explain how tides work to a ten-year-old.",
    "Résume cet article en trois phrases pour un lecteur pressé.",
    "Fasse den folgenden Text in drei Sätzen zusammen.",
    "Escribe un poema corto sobre el otoño.",
    "Riassumi questo articolo.",
    "Resuma este texto em duas frases.",
    "Переведи этот текст на английский.",
    "ok",
]


def test_the_common_languages_identifier_shares_the_whole_models_tables():
    full, common = language._identifier(), language._identifier(common_only=True)

    assert common.tk_nextmove is full.tk_nextmove and common.tk_output is full.tk_output
    assert sorted(common.nb_classes) == sorted(language.COMMON)
    assert len(full.nb_classes) > len(common.nb_classes)  # the whole model stays whole


def test_it_answers_as_a_model_loaded_on_its_own_and_restricted():
    alone = langid.LanguageIdentifier.from_modelpath(langid.MODEL_DIR / langid.MODEL_FILE, norm_probs=True)
    alone.set_languages(language.COMMON)
    common = language._identifier(common_only=True)

    for text in TEXTS:
        assert common.classify(text) == alone.classify(text), text
