"""`manage.py serve` refuses bad addresses with a message that says what to do, starting nothing."""

import socket

import pytest

from tests.support import clean_env, free_port, manage


@pytest.fixture
def busy_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_port_in_use_is_reported_with_the_way_out(tmp_path, busy_port):
    completed = manage("serve", "--port", str(busy_port), env=clean_env(DATA_DIR=str(tmp_path)))

    assert completed.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{busy_port}" in completed.stderr
    assert f"PORT={busy_port + 1} make run" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize(
    ("variables", "arguments", "message"),
    [
        ({"PORT": "eighty"}, [], "PORT must be a whole number, not 'eighty'"),
        ({}, ["--port", "70000"], "PORT must be >= 1 and <= 65535, not 70000"),
        ({"WEB_CONCURRENCY": "many"}, [], "WEB_CONCURRENCY must be a whole number"),
    ],
)
def test_bad_port_or_concurrency_is_refused(tmp_path, variables, arguments, message):
    completed = manage("serve", *arguments, env=clean_env(DATA_DIR=str(tmp_path), **variables))

    assert completed.returncode == 1
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr


def test_an_unreachable_database_is_reported_in_one_line_before_anything_starts(tmp_path):
    database_port = free_port()
    env = clean_env(
        DATA_DIR=str(tmp_path),
        DATABASE_URL=f"postgresql://app:hunter2@127.0.0.1:{database_port}/prompts",
        SECRET_KEY="k" * 50,
    )

    completed = manage("serve", "--port", str(free_port()), env=env, timeout=60)

    assert completed.returncode == 1
    assert completed.stdout == ""  # neither child started: no banner, no worker output
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert "DATABASE_URL" in lines[0]
    assert f"127.0.0.1:{database_port}" in lines[0]
    assert "hunter2" not in lines[0]
