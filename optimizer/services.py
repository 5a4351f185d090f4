"""State changes of the optimizer app. Views, commands and tasks call these; nothing else writes."""

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

ADMIN_PASSWORD_FILENAME = "admin-password.txt"  # noqa: S105 - a file name, not a secret


def admin_password_file() -> Path:
    return settings.DATA_DIR / ADMIN_PASSWORD_FILENAME


@dataclass(frozen=True)
class FirstSuperuser:
    username: str
    created: bool
    generated_password: str | None = None  # set only when generated now: shown once, never logged


def first_superuser_ensure(*, username: str, email: str = "", password: str | None = None) -> FirstSuperuser:
    """Create a superuser when none exists; a no-op otherwise.

    Without ``password`` one is generated, returned once and saved owner-only in the data directory.
    Raises ``ValidationError`` for a username or password Django would reject.
    """
    user_model = get_user_model()
    existing = user_model.objects.filter(is_superuser=True).order_by("pk").first()
    if existing is not None:
        return FirstSuperuser(username=existing.get_username(), created=False)

    user_model.username_validator(username)
    generated = password is None
    if generated:
        password = secrets.token_urlsafe(12)
    else:
        validate_password(password, user_model(username=username, email=email))
    try:
        with transaction.atomic():
            user_model.objects.create_superuser(username=username, email=email, password=password)
    except IntegrityError:
        raise ValidationError(
            f"A user named {username!r} already exists but is not a superuser. "
            "Choose another name with ADMIN_USERNAME."
        ) from None
    if not generated:
        return FirstSuperuser(username=username, created=True)
    _write_owner_only(admin_password_file(), f"{username}\n{password}\n")
    return FirstSuperuser(username=username, created=True, generated_password=password)


def _write_owner_only(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only; an earlier file (the first admin of another
    database using this data directory) is kept beside it, never overwritten."""
    if path.exists():
        stamp = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
        path.rename(path.with_name(f"{path.name}.{stamp}"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
