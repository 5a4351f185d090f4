"""Checking that an answer matches the requested JSON schema, and asking once for a repair."""

import json
import threading
from functools import lru_cache

from jsonschema import Draft202012Validator

from optimizer.llm.errors import InvalidAnswer
from optimizer.llm.types import LLMRequest, Message

_fingerprints: dict[int, tuple[dict, str]] = {}
_fingerprints_lock = threading.Lock()


def schema_fingerprint(schema: dict) -> str:
    """The schema as canonical JSON, computed once per schema object.

    Schemas are treated as immutable (the pipeline's are module constants): serializing one on
    every call cost more than validating against it.
    """
    entry = _fingerprints.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    with _fingerprints_lock:
        if len(_fingerprints) >= 256:
            _fingerprints.clear()
        _fingerprints[id(schema)] = (schema, text)  # holding the schema keeps its id unique
    return text


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


def validate(data: dict, schema: dict) -> None:
    """Raise InvalidAnswer naming the first mismatch, if ``data`` does not match ``schema``."""
    error = next(_validator(schema_fingerprint(schema)).iter_errors(data), None)
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "the top level"
        raise InvalidAnswer(f"at {where}: {error.message[:300]}")


def repair_request(request: LLMRequest, bad_answer: str, problem: str) -> LLMRequest:
    """The same request, plus the bad answer and what was wrong with it: one chance to fix it."""
    return LLMRequest(
        operation=f"{request.operation}:repair",
        messages=(
            *request.messages,
            Message("assistant", bad_answer[:20_000]),
            Message(
                "user",
                f"That answer is not valid: {problem}. Reply again with only a JSON object that "
                "matches the schema exactly.",
            ),
        ),
        schema=request.schema,
        schema_name=request.schema_name,
        strict=request.strict,
        temperature=request.temperature,
        max_output_tokens=request.max_output_tokens,
    )
