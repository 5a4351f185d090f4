"""Prompt Optimizer's Django project: settings, URLs, the WSGI entry point."""

# The product's version (`manage.py optimize --version`): raise it with each release.
__version__ = "0.1.0"
