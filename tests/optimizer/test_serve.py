"""`manage.py serve` refuses bad addresses with a message that says what to do, starting nothing."""

import socket

import pytest

from tests.support import clean_env, manage


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
