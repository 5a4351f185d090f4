from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.functional import cached_property

from optimizer.llm.key_names import key_variable_refusal
from optimizer.navigation import run_urls

USER_MODEL = settings.AUTH_USER_MODEL  # a name the run's own `settings` field cannot shadow


class Provider(models.Model):
    """An endpoint that answers model calls. Its API key is never stored: only the *name* of the
    environment variable that holds it."""

    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI-compatible Chat Completions"
        ANTHROPIC = "anthropic", "Anthropic Messages"
        BUILTIN = "builtin", "Built-in engine"

    name = models.CharField(max_length=60, unique=True)
    kind = models.CharField(max_length=20, choices=Kind)
    base_url = models.URLField(
        blank=True, help_text="API root, e.g. https://api.openai.com/v1 (blank for the built-in engine)."
    )
    api_key_env = models.CharField(
        "API key variable",
        max_length=80,
        blank=True,
        help_text="Name of the environment variable holding the key, e.g. OPENAI_API_KEY. "
        "Blank for servers that need none (Ollama, vLLM).",
    )
    price_catalog = models.CharField(
        max_length=40,
        blank=True,
        help_text="genai-prices provider id for default prices (openai, anthropic, x-ai, google, "
        "openrouter, groq...). Blank: unpriced unless a model has its own prices.",
    )
    enabled = models.BooleanField(default=True)
    fallback_order = models.PositiveSmallIntegerField(
        default=100, help_text="Lower is tried first when failing over."
    )
    connect_timeout_s = models.FloatField(default=5.0, validators=[MinValueValidator(0.1)])
    read_timeout_s = models.FloatField(default=60.0, validators=[MinValueValidator(0.1)])
    max_concurrency = models.PositiveSmallIntegerField(
        default=8, validators=[MinValueValidator(1)], help_text="Concurrent requests per process."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["fallback_order", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        errors = {}
        if self.kind != self.Kind.BUILTIN and not self.base_url:
            errors["base_url"] = "Give the API's base URL, e.g. https://api.openai.com/v1."
        # The key goes to base_url, which the admin chooses: only a provider key may be named.
        if refusal := key_variable_refusal(self.api_key_env):
            errors["api_key_env"] = refusal
        if errors:
            raise ValidationError(errors)


class ModelChoiceQuerySet(models.QuerySet):
    def usable(self) -> "ModelChoiceQuerySet":
        """Enabled language models of enabled providers, in failover order (the built-in engine is
        not among them: callers fall back to it themselves)."""
        return (
            self.filter(enabled=True, provider__enabled=True)
            .exclude(provider__kind=Provider.Kind.BUILTIN)
            .select_related("provider")
            .order_by("provider__fallback_order", "fallback_order", "model_id")
        )


class ModelChoice(models.Model):
    """A model of a provider that calls may use. Its price is genai-prices' unless an admin set one
    (``costs.ModelPrice``)."""

    class Tier(models.TextChoices):
        FAST = "fast", "Fast"
        BALANCED = "balanced", "Balanced"
        BEST = "best", "Best"

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="models")
    model_id = models.CharField(max_length=120, help_text="The provider's model name, e.g. gpt-4o-mini.")
    tier = models.CharField(max_length=10, choices=Tier, default=Tier.BALANCED)
    enabled = models.BooleanField(default=True)
    fallback_order = models.PositiveSmallIntegerField(default=100)
    max_output_tokens = models.PositiveIntegerField(default=4096)

    objects = ModelChoiceQuerySet.as_manager()

    class Meta:
        ordering = ["provider__fallback_order", "fallback_order", "model_id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "model_id"], name="unique_model_per_provider")
        ]

    def __str__(self) -> str:
        return f"{self.provider.name} · {self.model_id}"

    @property
    def breaker_key(self) -> str:
        return f"{self.provider_id}:{self.model_id}"


class Prompt(models.Model):
    """A prompt a user brought to optimize; its runs are the optimizations of it."""

    class Type(models.TextChoices):
        GENERAL = "general", "General"
        CREATIVE = "creative", "Creative"
        TECHNICAL = "technical", "Technical"
        ANALYTICAL = "analytical", "Analytical"
        CODING = "coding", "Coding"
        DATA = "data", "Data"

    owner = models.ForeignKey(USER_MODEL, on_delete=models.CASCADE, related_name="prompts")
    title = models.CharField(max_length=120)
    text = models.TextField()
    type = models.CharField(max_length=12, choices=Type, default=Type.GENERAL)
    tags = models.JSONField(default=list, blank=True)
    favorite = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self) -> str:
        return self.title


class Batch(models.Model):
    """Many prompts optimized with the same settings: each item becomes an ordinary run (the same
    pipeline, gateway, budgets and history as a single one), started a few at a time by
    ``optimizer.batches.services.dispatch``."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Not started"  # previewed: what would run, waiting for Start
        RUNNING = "running", "Running"
        CANCELLED = "cancelled", "Cancelled"  # running items finish, no new ones start
        DONE = "done", "Done"

    owner = models.ForeignKey(USER_MODEL, on_delete=models.CASCADE, related_name="batches")
    name = models.CharField(max_length=120)
    settings = models.JSONField(default=dict, help_text="Type, preset, techniques, model, span keeping.")
    source = models.CharField(max_length=255, help_text="The uploaded file's name, or “pasted text”.")
    format = models.CharField(max_length=10, help_text="text, csv, json or jsonl.")
    status = models.CharField(max_length=10, choices=Status, default=Status.DRAFT)
    skipped = models.JSONField(
        default=list, blank=True, help_text="Rows left out and why: [{row, kind, reason}]."
    )
    empty_rows = models.PositiveIntegerField(
        default=0, help_text="Empty rows left out (counted, not listed)."
    )
    size = models.PositiveIntegerField(default=0, help_text="Items, duplicates included.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "batches"
        indexes = [models.Index(fields=["owner", "-created_at"]), models.Index(fields=["status"])]

    def __str__(self) -> str:
        return self.name


class BatchItem(models.Model):
    """One prompt of a batch. ``dispatched_at`` is set, with ``run``, in the transaction that creates
    the run, so an item is started once however many workers dispatch the batch; a duplicate (the
    same text as an earlier item) is never started: it shows its first item's result."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    row = models.PositiveIntegerField(help_text="Where it came from: the line, or the array index.")
    title = models.CharField(max_length=120, blank=True)
    text = models.TextField()
    type = models.CharField(max_length=12, choices=Prompt.Type)
    tags = models.JSONField(default=list, blank=True)
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="The earlier item with the same text, whose result this one shares.",
    )  # fmt: skip
    run = models.ForeignKey(
        "OptimizationRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "row"]
        constraints = [models.UniqueConstraint(fields=["batch", "row"], name="unique_row_per_batch")]
        indexes = [models.Index(fields=["batch", "dispatched_at", "row"])]

    def __str__(self) -> str:
        return f"Item {self.row} of batch {self.batch_id}"


class OptimizationRun(models.Model):
    """One optimization of a prompt: its settings, progress, every stage's output and its cost. The
    stage outputs are stored, so showing a run never recomputes anything."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Engine(models.TextChoices):
        BUILTIN = "builtin", "Built-in engine"
        LLM = "llm", "Language model"

    STAGES = ("deconstruct", "diagnose", "design", "evaluate")

    owner = models.ForeignKey(USER_MODEL, on_delete=models.CASCADE, related_name="runs")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="runs")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children",
        help_text="The run this one re-optimized.",
    )  # fmt: skip
    batch = models.ForeignKey(
        Batch, null=True, blank=True, on_delete=models.CASCADE, related_name="runs",
        help_text="The batch this run is an item of.",
    )  # fmt: skip
    settings = models.JSONField(default=dict, help_text="Type, preset, techniques, model, span keeping.")
    engine = models.CharField(max_length=10, choices=Engine, default=Engine.BUILTIN)
    provider = models.CharField(max_length=60, blank=True, help_text="Who actually answered.")
    model = models.CharField(max_length=120, blank=True)
    status = models.CharField(max_length=10, choices=Status, default=Status.QUEUED)
    stage = models.CharField(max_length=12, blank=True, help_text="The stage running now.")
    stage_note = models.CharField(
        max_length=200, blank=True, help_text="What the running stage is doing now: a retry, a failover."
    )
    stage_calls = models.JSONField(
        default=list,
        blank=True,
        help_text="Per stage: the model that answered, what it cost, and what failed before it.",
    )
    stage_timings = models.JSONField(default=dict, blank=True, help_text="Milliseconds per finished stage.")
    deconstruction = models.JSONField(default=dict, blank=True)
    diagnosis = models.JSONField(default=dict, blank=True)
    techniques = models.JSONField(
        default=list, blank=True, help_text="Chosen techniques, why, applied or not."
    )
    optimized_text = models.TextField(blank=True)
    changes = models.JSONField(default=list, blank=True)
    questions = models.JSONField(
        default=list, blank=True, help_text="Open clarifying questions: what only the author can answer."
    )
    scores = models.JSONField(
        default=dict, blank=True, help_text="Checklist scores before and after; the model's verdict, if any."
    )
    score_before = models.PositiveSmallIntegerField(null=True, blank=True)
    score_after = models.PositiveSmallIntegerField(null=True, blank=True)
    score_gain = models.SmallIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    unpriced_calls = models.PositiveIntegerField(default=0, help_text="Calls to models with no known price.")
    cached = models.BooleanField(default=False, help_text="Completed from the result cache.")
    analysis_cached = models.BooleanField(default=False, help_text="Stages 1-2 came from the analysis cache.")
    degraded_reason = models.TextField(blank=True)
    model_selection = models.JSONField(
        default=list,
        blank=True,
        help_text="With Auto: each stage's chosen model, why, and the ones passed over.",
    )
    kept_original = models.BooleanField(
        default=False, help_text="The author chose to keep the original prompt instead of the rewrite."
    )
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Times a worker started this run (more than one: a worker died mid-way)."
    )
    worker = models.CharField(max_length=120, blank=True, help_text="host:pid of the worker running it.")
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Written every few seconds while it runs: a silent run lost its worker.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["owner", "status"]),
            models.Index(fields=["owner", "score_gain"]),
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["batch", "status"]),
            # The per-minute run limit counts the runs a user started, a batch's left out.
            models.Index(
                fields=["owner", "-created_at"], condition=models.Q(batch=None), name="run_owner_single_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} (prompt {self.prompt_id})"

    @cached_property
    def urls(self) -> dict[str, str]:
        """The addresses its page links to (``navigation.run_urls``): ``run.urls.diff`` in a template."""
        return run_urls(self.pk)


class StageAnswer(models.Model):
    """A model's answer to one request of a run, written in the same transaction as the call's usage
    record and kept until the run ends. A run started again after its worker died (see runqueue)
    takes the answers it already paid for from here, so no stage is billed twice, even when the
    worker died before the API cache had the answer or the cache lost it."""

    run = models.ForeignKey(OptimizationRun, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=90, help_text="The request's API cache key.")
    # Text, not a JSONField: PostgreSQL's jsonb reorders an object's keys, and the next stage's
    # request quotes this answer, so a reordered one would miss the cache it must hit.
    entry = models.TextField(help_text="The answer and what it cost, as JSON in the order it came.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["run", "key"])]

    def __str__(self) -> str:
        return f"Answer for run {self.run_id}"


class WorkerHeartbeat(models.Model):
    """One task-worker process, as it last reported itself: django-q2 has no health probe of its own,
    so each worker process writes this row when it starts and every few seconds after (see
    ``optimizer.monitoring.heartbeat``). A worker is alive while its beat is recent."""

    name = models.CharField(max_length=120, unique=True, help_text="host:pid of the worker process.")
    cluster = models.CharField(max_length=100, help_text="The django-q2 cluster (queue) it serves.")
    host = models.CharField(max_length=100)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField(db_index=True)
    rss_bytes = models.PositiveBigIntegerField(default=0, help_text="Its resident memory at the last beat.")

    class Meta:
        ordering = ["cluster", "name"]

    def __str__(self) -> str:
        return f"{self.cluster} {self.name}"
