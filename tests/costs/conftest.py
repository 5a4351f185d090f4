# The fake provider (a real HTTP server on loopback) and the gateway's test settings, from its own tests.
from tests.optimizer.llm.conftest import fake, fake_server, gateway_settings, openai_model  # noqa: F401
