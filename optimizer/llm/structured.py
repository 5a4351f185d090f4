"""Checking that an answer matches the requested JSON schema, and asking once for a repair."""

import json
from functools import lru_cache

from jsonschema import Draft202012Validator

from optimizer.llm.errors import InvalidAnswer
from optimizer.llm.types import LLMRequest, Message


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


def validate(data: dict, schema: dict) -> None:
    """Raise InvalidAnswer naming the first mismatch, if ``data`` does not match ``schema``."""
    error = next(_validator(json.dumps(schema, sort_keys=True)).iter_errors(data), None)
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
