"""`make` finds a Python >= 3.12 by itself, and says what to do when there is none."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.support import PROJECT_ROOT

MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="needs make")

TOO_OLD = "#!/bin/sh\n# answers like Python 3.11: fails the version check\nexit 1\n"


def fake_bin(tmp_path, **programs: str) -> str:
    """A PATH holding only the given programs: a script text, or a path to link to."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, target in programs.items():
        if target.startswith("#!"):
            (folder / name).write_text(target)
            (folder / name).chmod(0o755)
        else:
            (folder / name).symlink_to(target)
    return str(folder)


def make_venv(tmp_path, path: str, *flags: str) -> subprocess.CompletedProcess:
    """Ask make for a virtual environment under tmp_path, with only ``path`` to find Python on."""
    venv = tmp_path / "venv"
    env = {key: value for key, value in os.environ.items() if key != "PYTHON"}
    env["PATH"] = path
    return subprocess.run(
        [MAKE, *flags, "-C", str(PROJECT_ROOT), f"VENV={venv}", f"{venv}/bin/python"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_make_prefers_a_versioned_python_that_passes_the_version_check(tmp_path):
    path = fake_bin(tmp_path, **{"python3.13": TOO_OLD, "python3.12": sys.executable, "python3": TOO_OLD})

    completed = make_venv(tmp_path, path, "-n")

    assert completed.returncode == 0, completed.stderr
    assert "python3.12 -m venv" in completed.stdout


def test_make_stops_with_a_clear_message_when_no_python_is_new_enough(tmp_path):
    path = fake_bin(tmp_path, python3=TOO_OLD, python=TOO_OLD)

    completed = make_venv(tmp_path, path)

    assert completed.returncode != 0
    assert "needs Python 3.12 or newer" in completed.stdout
    assert not (tmp_path / "venv").exists()


def test_setup_run_again_prints_only_what_it_does(tmp_path):
    """`make run` sets up on every start: a second setup has nothing to report about the cache
    table that is already there ("Cache table 'django_cache' already exists." on each start)."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"DATA_DIR": str(tmp_path / "data"), "STATIC_ROOT": str(tmp_path / "static")}
    env.pop("SECRET_KEY", None)  # the embedded default makes its own, as for a new user

    def setup() -> str:
        completed = subprocess.run(
            [MAKE, "-C", str(PROJECT_ROOT), "setup"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert completed.returncode == 0, completed.stderr
        return completed.stdout + completed.stderr

    setup()
    again = setup()

    assert "already exists" not in again, again
    assert "Preparing the database and static files" in again
