"""STORAGES["backups"] from the environment: BACKUP_STORAGE names a Django storage class and
BACKUP_STORAGE_OPTIONS (a JSON object) its options. Read when the settings load, so a mistake
stops the start with a message that says what to fix (never echoing the options: they may hold a
secret)."""

import importlib.util
import json
import os
import re
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
EXAMPLE = (
    'BACKUP_STORAGE=storages.backends.s3.S3Storage BACKUP_STORAGE_OPTIONS=\'{"bucket_name": "my-backups"}\''
)


def storage_from_env(environ: Mapping[str, str] | None = None) -> dict | None:
    """The STORAGES entry for backups, or None when BACKUP_STORAGE is unset (the local folder)."""
    environ = os.environ if environ is None else environ
    backend = (environ.get("BACKUP_STORAGE") or "").strip()
    options_text = (environ.get("BACKUP_STORAGE_OPTIONS") or "").strip()
    if not backend:
        if options_text:
            raise ImproperlyConfigured(
                "BACKUP_STORAGE_OPTIONS is set but BACKUP_STORAGE is not: name the storage class too, "
                f"e.g. {EXAMPLE}, or unset BACKUP_STORAGE_OPTIONS to keep backups in BACKUP_DIR."
            )
        return None
    if not DOTTED.fullmatch(backend):
        raise ImproperlyConfigured(
            f"BACKUP_STORAGE must be the dotted path of a Django storage class, e.g. {EXAMPLE}; "
            f"{backend!r} is not one."
        )
    module = backend.rpartition(".")[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ImproperlyConfigured(
            f"BACKUP_STORAGE names {backend}, but there is no module {module}: install the package "
            "that provides it (django-storages[s3] for S3) or correct the name."
        )
    return {"BACKEND": backend, "OPTIONS": _options(options_text)}


def _options(text: str) -> dict:
    if not text:
        return {}
    try:
        options = json.loads(text)
    except ValueError as exc:
        where = f" at character {exc.pos}" if hasattr(exc, "pos") else ""
        raise ImproperlyConfigured(
            "BACKUP_STORAGE_OPTIONS must be a JSON object of the storage's options, e.g. "
            f'{{"bucket_name": "my-backups"}}; it is not valid JSON ({where.strip() or "unreadable"}). '
            "Its value is not shown: it may hold a secret."
        ) from None
    if not isinstance(options, dict):
        raise ImproperlyConfigured(
            'BACKUP_STORAGE_OPTIONS must be a JSON object such as {"bucket_name": "my-backups"}, not '
            f"a JSON {type(options).__name__}."
        )
    return options
