"""The run page's widgets are drawn by Python for speed: they must give Django's HTML exactly."""

import pytest
from django import forms

from optimizer.forms import AnswerForm, DrawnTextarea, DrawnTextInput, RunEditForm

ATTRS = [
    {},
    {"id": "id_answer-audience", "autocomplete": "off", "aria-describedby": "id_answer-audience-why"},
    {"required": True, "disabled": False, "placeholder": 'say "who" <reads> & why', "rows": 12, "x": None},
]
VALUES = [None, "", "plain", 'a "quoted" <b>bold</b> & more', "two\nlines\n\nand a blank", 0, "é 日本"]


@pytest.mark.parametrize("attrs", ATTRS)
@pytest.mark.parametrize("value", VALUES)
def test_the_drawn_widgets_give_djangos_html_byte_for_byte(attrs, value):
    for ours, django_widget in ((DrawnTextInput, forms.TextInput), (DrawnTextarea, forms.Textarea)):
        assert ours(attrs={"class": "wide"}).render("name", value, attrs) == django_widget(
            attrs={"class": "wide"}
        ).render("name", value, attrs)


def test_bound_forms_with_errors_draw_as_django_would():
    """aria-invalid, the prefix's names and ids, the value posted: as with Django's widgets."""
    questions = [{"key": "audience", "question": "Who reads it?"}, {"key": "length", "question": "How long?"}]
    bound = AnswerForm(questions, data={"answer-audience": " <kids> ", "answer-length": "x" * 5000})
    edit = RunEditForm(data={"edit-text": ""})
    assert not bound.is_valid() and not edit.is_valid()

    for form in (bound, edit, AnswerForm(questions), RunEditForm(initial={"text": "Keep {name} & <this>"})):
        for field in form:
            plain = type(field.field.widget).__mro__[1]  # Django's own widget class
            theirs = plain(attrs=field.field.widget.attrs)
            ours_html = field.as_widget()
            field.field.widget, kept = theirs, field.field.widget
            try:
                assert ours_html == field.as_widget()
            finally:
                field.field.widget = kept
    assert 'aria-invalid="true"' in str(edit["text"])
