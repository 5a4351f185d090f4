"""A fake model provider: a real HTTP server for tests, demos and benchmarks.

It speaks OpenAI Chat Completions (``POST /v1/chat/completions``) and Anthropic Messages
(``POST /v1/messages``) and answers with JSON that matches the schema in the request, with
realistic ``usage``. Behaviour is set globally (latency, failure rate) and can be scripted per
request, in order, over HTTP or from Python (or by rates, from the command line):

    ok | malformed | wrong_schema | no_usage | hang | trickle (the answer a byte at a time, every
    0.2 s: each read is quick, the whole takes minutes) | {"status": 429, "retry_after": 1, "headers": {...}}
    | {"data": {...}} (answer with exactly this JSON)

Control endpoints: ``POST /_fake/script`` (a JSON list of behaviours), ``POST /_fake/reset``,
``GET /_fake/requests`` (what was received, API keys removed).
"""

import json
import random
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANG_S = 300
TRICKLE_S = 0.2


def example_for(schema: dict, root: dict | None = None) -> object:
    """A small value that satisfies ``schema`` (the subset of JSON Schema structured outputs use)."""
    root = root or schema
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return example_for(target, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if schema.get(combinator):
            return example_for(schema[combinator][0], root)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: example_for(sub, root) for name, sub in properties.items()}
    if kind == "array":
        count = max(schema.get("minItems", 1), 1)
        return [example_for(schema.get("items", {"type": "string"}), root) for _ in range(count)]
    if kind == "string":
        text = "example"
        return text.ljust(schema.get("minLength", 0), "x")[: schema.get("maxLength", 10_000)]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        high = schema.get("maximum", low + 100)
        value = max(low, min(high, (low + high) // 2 if kind == "integer" else (low + high) / 2))
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    return None


def _rewrite(body: dict, rewrite=None) -> str:
    """What a model asked to improve a prompt might answer: the prompt, with a role and a format."""
    messages = body.get("messages", [])
    last = messages[-1].get("content", "") if messages else ""
    if isinstance(last, list):  # Anthropic content blocks
        last = " ".join(block.get("text", "") for block in last if isinstance(block, dict))
    start, end = last.find("<prompt>\n"), last.rfind("\n</prompt>")
    original = last[start + len("<prompt>\n") : end] if start >= 0 and end > start else last
    if rewrite is not None:
        return rewrite(original)
    return f"You are an expert assistant.\n\n{original}\n\nAnswer in at most five bullet points."


def _tokens(text: str) -> int:
    return max(len(text) // 4, 1)


class FakeProvider:
    """The server and its behaviour; ``start()`` serves from a background thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 0.0,
        fail_rate: float = 0.0,
        fail_status: int = 500,
        retry_after: float | None = None,
        hang_rate: float = 0.0,
        malformed_rate: float = 0.0,
    ):
        self.latency = latency
        self.fail_rate = fail_rate
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.hang_rate = hang_rate
        self.malformed_rate = malformed_rate
        self.script: deque = deque()
        self.rewrite = None  # a function of the original prompt, to answer design requests with
        self.cached_fraction = 0.0  # the share of prompt tokens reported as read from the prompt cache
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests answered at the same time
        self._lock = threading.Lock()
        self._random = random.Random(7)  # noqa: S311 - failure injection, not security
        self.server = ThreadingHTTPServer((host, port), self._handler_class())
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "FakeProvider":
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def enqueue(self, *behaviours) -> None:
        with self._lock:
            self.script.extend(behaviours)

    def reset(self) -> None:
        with self._lock:
            self.script.clear()
            self.requests.clear()
            self.max_in_flight = 0
            self.rewrite = None
            self.cached_fraction = 0.0

    def _next_behaviour(self):
        with self._lock:
            if self.script:
                return self.script.popleft()
        roll = self._random.random()
        if roll < self.fail_rate:
            failure = {"status": self.fail_status}
            if self.retry_after is not None:
                failure["retry_after"] = self.retry_after
            return failure
        if roll < self.fail_rate + self.hang_rate:
            return "hang"
        if roll < self.fail_rate + self.hang_rate + self.malformed_rate:
            return "malformed"
        return "ok"

    def _record(self, path: str, headers, body: dict) -> None:
        safe_headers = {
            k.lower(): v for k, v in headers.items() if k.lower() not in ("authorization", "x-api-key")
        }
        safe_headers["has-credentials"] = str(
            bool(headers.get("authorization") or headers.get("x-api-key"))
        ).lower()
        with self._lock:
            self.requests.append({"path": path, "headers": safe_headers, "body": body})

    # --- answers ---------------------------------------------------------------------------
    def answer(self, path: str, body: dict, behaviour) -> tuple[int, dict, bytes]:
        if isinstance(behaviour, dict) and "status" in behaviour:
            headers = dict(behaviour.get("headers", {}))
            if "retry_after" in behaviour:
                headers["retry-after"] = str(behaviour["retry_after"])
            status = behaviour["status"]
            error = {"error": {"message": f"fake error {status}", "type": "fake"}}
            return status, headers, json.dumps(error).encode()
        if behaviour == "hang":
            time.sleep(HANG_S)
        anthropic = path.endswith("/messages")
        schema = (
            body.get("tools", [{}])[0].get("input_schema", {})
            if anthropic
            else body.get("response_format", {}).get("json_schema", {}).get("schema", {})
        )
        data = example_for(schema)
        if isinstance(behaviour, dict) and "data" in behaviour:
            data = behaviour["data"]
        elif isinstance(data, dict) and "optimized_prompt" in data:
            data["optimized_prompt"] = _rewrite(body, self.rewrite)  # plausible: it keeps the prompt's spans
        if behaviour == "wrong_schema":
            data = {"unexpected": True}
        text = "this is not JSON {" if behaviour == "malformed" else json.dumps(data)
        prompt = json.dumps(body.get("messages", [])) + json.dumps(body.get("system", ""))
        prompt_tokens, output_tokens = _tokens(prompt), _tokens(text)
        cached_tokens = int(prompt_tokens * self.cached_fraction)
        if anthropic:
            content = [{"type": "text", "text": text}] if behaviour == "malformed" else [
                {"type": "tool_use", "id": "toolu_fake", "name": "respond", "input": data}
            ]  # fmt: skip
            payload = {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": body.get("model"),
                "content": content,
                "stop_reason": "tool_use",
                "usage": {
                    "input_tokens": prompt_tokens - cached_tokens,  # Anthropic's count leaves cache reads out
                    "output_tokens": output_tokens,
                    "cache_read_input_tokens": cached_tokens,
                    "cache_creation_input_tokens": 0,
                },
            }
        else:
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": output_tokens,
                    "total_tokens": prompt_tokens + output_tokens,
                    "prompt_tokens_details": {"cached_tokens": cached_tokens},
                },
            }
        if behaviour == "no_usage":
            payload.pop("usage")
        return 200, {}, json.dumps(payload).encode()

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without TCP_NODELAY every keep-alive
            # answer would wait ~40 ms for the client's delayed ACK.
            disable_nagle_algorithm = True

            def log_message(self, *args):  # quiet: tests and benchmarks read their own output
                pass

            def _reply(self, status: int, headers: dict, content: bytes, trickle: bool = False) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if not trickle:
                    self.wfile.write(content)
                    return
                try:
                    for index in range(len(content)):
                        self.wfile.write(content[index : index + 1])
                        self.wfile.flush()
                        time.sleep(TRICKLE_S)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up: that is what a trickle is for

            def _body(self) -> dict:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    return json.loads(raw or b"{}")
                except ValueError:
                    return {}

            def do_GET(self):
                if self.path == "/_fake/requests":
                    with fake._lock:
                        content = json.dumps(fake.requests).encode()
                    self._reply(200, {}, content)
                else:
                    self._reply(404, {}, b'{"error": "not found"}')

            def do_POST(self):
                body = self._body()
                if self.path == "/_fake/script":
                    fake.enqueue(*(body if isinstance(body, list) else [body]))
                    self._reply(200, {}, b"{}")
                    return
                if self.path == "/_fake/reset":
                    fake.reset()
                    self._reply(200, {}, b"{}")
                    return
                if not self.path.endswith(("/chat/completions", "/messages")):
                    self._reply(404, {}, b'{"error": "not found"}')
                    return
                fake._record(self.path, self.headers, body)
                with fake._lock:
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    if fake.latency:
                        time.sleep(fake.latency)
                    behaviour = fake._next_behaviour()
                    reply = fake.answer(self.path, body, behaviour)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1
                self._reply(*reply, trickle=behaviour == "trickle")

        return Handler
