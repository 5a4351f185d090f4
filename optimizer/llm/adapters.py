"""Request bodies and answer parsing for each provider API, with usage normalized for pricing.

OpenAI counts cached tokens inside ``prompt_tokens``; Anthropic's ``input_tokens`` excludes cache
reads and writes. Both are turned into TokenUsage, whose ``input_tokens`` is the total input.
"""

import json
import os
import time
from dataclasses import dataclass

import httpx

from optimizer.llm.errors import InvalidAnswer, ProviderError, error_from_response
from optimizer.llm.key_names import key_variable_refusal
from optimizer.llm.pricing import TokenUsage
from optimizer.llm.types import LLMRequest

ANTHROPIC_VERSION = "2023-06-01"
ANSWER_TOOL = "respond"


@dataclass(frozen=True)
class Answer:
    data: dict
    text: str
    usage: TokenUsage | None  # None when the provider reported none


def api_key(env_name: str) -> str | None:
    """The key from the environment; None when the provider needs none. Never logged.

    The name is checked again here: a row saved before names were checked, or through ``update()``,
    must not send a variable that is not a provider key (the admin password, the database URL...).
    """
    if not env_name:
        return None
    if refusal := key_variable_refusal(env_name):
        raise ProviderError(f"the API key variable is refused: {refusal}")
    key = os.environ.get(env_name, "").strip()
    if not key:
        raise ProviderError(f"the environment variable {env_name} holding the API key is not set")
    return key


def openai_body(request: LLMRequest, model_id: str) -> dict:
    body = {
        "model": model_id,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": request.schema_name, "schema": request.schema, "strict": request.strict},
        },
        "max_completion_tokens": request.max_output_tokens,
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    return body


def anthropic_body(request: LLMRequest, model_id: str) -> dict:
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    body = {
        "model": model_id,
        "max_tokens": request.max_output_tokens,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages if m.role != "system"],
        "tools": [
            {
                "name": ANSWER_TOOL,
                "description": f"Return the {request.schema_name} answer.",
                "input_schema": request.schema,
            }
        ],
        "tool_choice": {"type": "tool", "name": ANSWER_TOOL},
    }
    if system:
        body["system"] = system
    if request.temperature is not None:
        body["temperature"] = request.temperature
    return body


def openai_parse(payload: dict) -> Answer:
    try:
        message = payload["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise InvalidAnswer("no choices[0].message in the answer") from None
    if message.get("refusal"):
        raise InvalidAnswer("the model refused to answer")
    text = message.get("content") or ""
    return Answer(data=_json_object(text), text=text, usage=_openai_usage(payload.get("usage")))


def anthropic_parse(payload: dict) -> Answer:
    blocks = payload.get("content") if isinstance(payload, dict) else None
    if not isinstance(blocks, list):
        raise InvalidAnswer("no content blocks in the answer")
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "tool_use" and block.get("name") == ANSWER_TOOL:
            data = block.get("input")
            if not isinstance(data, dict):
                raise InvalidAnswer("the tool input is not an object")
            return Answer(data=data, text=json.dumps(data), usage=_anthropic_usage(payload.get("usage")))
    texts = [b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
    text = "".join(texts)
    return Answer(data=_json_object(text), text=text, usage=_anthropic_usage(payload.get("usage")))


def _json_object(text: str) -> dict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidAnswer(f"the answer is not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(data, dict):
        raise InvalidAnswer("the answer is JSON but not an object")
    return data


def _count(value) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _openai_usage(usage) -> TokenUsage | None:
    if not isinstance(usage, dict) or "prompt_tokens" not in usage:
        return None
    details = usage.get("prompt_tokens_details") or {}
    return TokenUsage(
        input_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
        cached_tokens=_count(details.get("cached_tokens") if isinstance(details, dict) else 0),
    )


def _anthropic_usage(usage) -> TokenUsage | None:
    if not isinstance(usage, dict) or "input_tokens" not in usage:
        return None
    cache_read = _count(usage.get("cache_read_input_tokens"))
    cache_write = _count(usage.get("cache_creation_input_tokens"))
    return TokenUsage(
        input_tokens=_count(usage.get("input_tokens")) + cache_read + cache_write,
        output_tokens=_count(usage.get("output_tokens")),
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def send(
    client: httpx.Client,
    *,
    kind: str,
    base_url: str,
    key: str | None,
    body: dict,
    timeout: httpx.Timeout,
    deadline: float | None = None,
) -> dict:
    """POST one request; return the decoded JSON body, or raise ProviderError / InvalidAnswer.

    ``timeout`` bounds each wait for bytes (the first one included); ``deadline`` (a
    ``time.monotonic()`` value) bounds the whole answer, so a provider sending a byte now and then
    cannot hold the call past it (raised as a read timeout: the provider is as good as hung)."""
    if kind == "anthropic":
        url = base_url.rstrip("/") + "/messages"
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if key:
            headers["x-api-key"] = key
    else:
        url = base_url.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {key}"} if key else {}
    with client.stream("POST", url, json=body, headers=headers, timeout=timeout) as response:
        chunks = []
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            if deadline is not None and time.monotonic() > deadline:
                raise httpx.ReadTimeout("the answer did not arrive whole before the call's deadline")
        if response.status_code >= 400:
            raise error_from_response(response)
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        raise InvalidAnswer("the response body is not JSON") from None
