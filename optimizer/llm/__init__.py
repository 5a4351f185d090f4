"""The LLM gateway: every model call of the project goes through ``gateway.call``."""
