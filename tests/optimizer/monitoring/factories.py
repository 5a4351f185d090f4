"""Factories for the monitoring tests: runs and usage records with the times, latencies, errors and
hits a test chooses (``created_at`` is set after the insert: the models stamp it themselves)."""

from decimal import Decimal

import factory
from django.utils import timezone

from costs.models import UsageRecord
from optimizer.models import ModelChoice, OptimizationRun, Prompt, Provider, WorkerHeartbeat
from tests.factories import UserFactory


class _Backdated(factory.django.DjangoModelFactory):
    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class, *args, created_at=None, **kwargs):
        instance = super()._create(model_class, *args, **kwargs)
        if created_at is not None:
            model_class.objects.filter(pk=instance.pk).update(created_at=created_at)
            instance.created_at = created_at
        return instance


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    owner = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Prompt {n}")
    text = "Explain the tides to a ten-year-old."


class RunFactory(_Backdated):
    class Meta:
        model = OptimizationRun

    prompt = factory.SubFactory(PromptFactory)
    owner = factory.SelfAttribute("prompt.owner")
    status = OptimizationRun.Status.DONE
    engine = OptimizationRun.Engine.LLM


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider
        django_get_or_create = ("name",)

    name = "OpenAI"
    kind = Provider.Kind.OPENAI
    base_url = "https://api.example.test/v1"


class ModelChoiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelChoice

    provider = factory.SubFactory(ProviderFactory)
    model_id = factory.Sequence(lambda n: f"model-{n}")


class UsageRecordFactory(_Backdated):
    class Meta:
        model = UsageRecord

    provider = "OpenAI"
    model = "gpt-5-mini"
    operation = "design"
    status = UsageRecord.Status.OK
    latency_ms = 100
    cost = Decimal("0.001")


class WorkerHeartbeatFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WorkerHeartbeat

    name = factory.Sequence(lambda n: f"worker-host:{1000 + n}")
    cluster = "prompt-optimizer"
    host = "worker-host"
    pid = factory.Sequence(lambda n: 1000 + n)
    started_at = factory.LazyFunction(timezone.now)
    beat_at = factory.LazyFunction(timezone.now)
    rss_bytes = 50 * 1024 * 1024
