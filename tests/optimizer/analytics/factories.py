"""Runs with known scores, verdicts, techniques and questions, for the Analytics page's figures."""

import factory
from django.utils import timezone

from optimizer.models import OptimizationRun, Prompt
from tests.factories import UserFactory


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    owner = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Prompt {n}")
    text = factory.Sequence(lambda n: f"Explain topic {n} to a new colleague.")
    type = Prompt.Type.GENERAL


def verdict(winner: str) -> dict:
    return {"winner": winner, "confidence": "high", "criteria": [], "summary": "Judged."}


def technique(slug: str, *, applied: bool = True) -> dict:
    return {"slug": slug, "name": slug, "applied": applied, "note": "" if applied else "already there"}


class RunFactory(factory.django.DjangoModelFactory):
    """A finished run; ``gain`` sets the after score from the before one, ``winner`` the model's
    verdict, ``when`` its creation time (``created_at`` is set on insert, so it is written after)."""

    class Meta:
        model = OptimizationRun

    class Params:
        gain = 10
        winner = None

    owner = factory.SubFactory(UserFactory)
    prompt = factory.SubFactory(PromptFactory, owner=factory.SelfAttribute("..owner"))
    status = OptimizationRun.Status.DONE
    engine = OptimizationRun.Engine.BUILTIN
    score_before = 40
    score_after = factory.LazyAttribute(lambda run: run.score_before + run.gain)
    score_gain = factory.LazyAttribute(lambda run: run.gain)
    scores = factory.LazyAttribute(lambda run: {"verdict": verdict(run.winner)} if run.winner else {})
    techniques = factory.LazyFunction(list)
    questions = factory.LazyFunction(list)
    settings = factory.LazyFunction(dict)
    when = None

    @classmethod
    def _create(cls, model_class, *args, when=None, **kwargs):
        run = super()._create(model_class, *args, **kwargs)
        if when is not None:
            model_class.objects.filter(pk=run.pk).update(created_at=when)
            run.created_at = when
        return run

    @factory.lazy_attribute
    def finished_at(self):
        return timezone.now()
