"""The gateway's request and result shapes."""

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class Message:
    role: str  # "system", "user" or "assistant"
    content: str


@dataclass(frozen=True)
class LLMRequest:
    """One structured call: the messages, and the JSON schema the answer must match."""

    operation: str  # the pipeline stage or other purpose, for usage records
    messages: tuple[Message, ...]
    schema: dict
    schema_name: str = "answer"
    strict: bool = True
    temperature: float | None = 0.2
    max_output_tokens: int = 2048


@dataclass(frozen=True)
class Skip:
    """Why one candidate model did not answer."""

    provider: str
    model: str
    reason: str  # "breaker open", "budget refused", "error", "invalid answer", "no API key"
    error_class: str = ""
    status: int | None = None
    attempts: int = 0  # requests sent to it, retries included

    @property
    def why(self) -> str:
        """The reason with its details: "error (ProviderError, HTTP 503, 3 attempts)"."""
        details = [
            self.error_class,
            f"HTTP {self.status}" if self.status else "",
            f"{self.attempts} attempts" if self.attempts > 1 else "",
        ]
        detail = ", ".join(filter(None, details))
        return self.reason + (f" ({detail})" if detail else "")

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}: {self.why}"

    def as_record(self) -> dict:
        """What a run keeps of it: the model and why it did not answer."""
        return {"model": f"{self.provider} / {self.model}", "why": self.why}


@dataclass
class GatewayResult:
    """The answer and who gave it; ``skipped`` lists each earlier candidate and why it was passed."""

    data: dict
    provider: str
    model: str
    cost: Decimal | None
    cached: bool = False
    builtin: bool = False
    skipped: list[Skip] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)  # what failed before the model answered, in order
    selection: dict | None = None  # with "Auto": which model was chosen, why, and who was passed over

    @property
    def degraded(self) -> bool:
        """Something was tried before the answer and did not work out."""
        return bool(self.skipped)
