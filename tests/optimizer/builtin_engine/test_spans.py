import re

import pytest

from optimizer.builtin_engine.spans import missing_spans, protected_spans
from tests.prompts_csv import real_prompts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Act as an interviewer for the ${Position:Software Developer} role",
            "${Position:Software Developer}",
        ),
        ("Write about {topic} today", "{topic}"),
        ("Hello {{ user_name }}!", "{{ user_name }}"),
        ("Product 【`{{#1761815388187.sourceName#}}`】", "{{#1761815388187.sourceName#}}"),
        ("Summarize [article title] briefly", "[article title]"),
        ("Translate <source text> to French", "<source text>"),
        ("My first command is `pwd`", "`pwd`"),
        ("Send it to $recipient now", "$recipient"),
        ('Start with "Once upon a time" exactly', '"Once upon a time"'),
        ("Read https://example.com/docs?page=2 first", "https://example.com/docs?page=2"),
        ("Keep it under 150 words", "150"),
        ("Use this:\n```python\nprint({x})\n```\nthanks", "```python\nprint({x})\n```"),
    ],
)
def test_each_placeholder_style_and_literal_is_protected(text, expected):
    assert expected in [span.text for span in protected_spans(text)]


def test_spans_inside_a_longer_span_are_not_counted_twice():
    spans = protected_spans("See https://example.com/v2/items?id=42 and ```{x} 7```")

    assert [span.kind for span in spans] == ["url", "code block"]


def test_a_markdown_link_is_not_a_placeholder_but_its_url_is_kept():
    spans = protected_spans("Read [the guide](https://example.com/guide).")

    assert [(span.kind, span.text) for span in spans] == [("url", "https://example.com/guide")]


def test_missing_spans_names_what_a_rewrite_lost():
    original = "Write a {length} poem about {topic} in 3 stanzas."

    assert missing_spans(original, original) == []
    lost = missing_spans(original, "Write a short poem about the sea in three stanzas.")
    assert [span.text for span in lost] == ["{length}", "{topic}", "3"]


def test_every_real_prompt_yields_its_templated_placeholders():
    independent = re.compile(r"\{\{[^{}\n]+\}\}|\$\{[^{}\n]+\}")
    for row in real_prompts():
        prompt = row["prompt"]
        spans = {span.text for span in protected_spans(prompt)}
        assert missing_spans(prompt, prompt) == []
        for placeholder in independent.findall(prompt):
            assert placeholder in spans or any(placeholder in span for span in spans), (
                row["act"],
                placeholder,
            )
