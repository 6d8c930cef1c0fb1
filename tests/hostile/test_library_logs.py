"""A server that hangs up mid-handshake makes paramiko log a traceback, line by line, from its own thread:
none of it may reach the command's stderr or the Lambda's JSON logs; the reason does."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from programs_bridge.delivery import ConnectionFailed, RetryPolicy, SftpCredentials, SftpTarget, deliver
from programs_bridge.delivery.paramiko_log import PARAMIKO_LOGGERS


@pytest.fixture
def answers_garbage() -> Iterator[int]:
    """A loopback 'server' that answers with garbage instead of an SSH banner, then closes the connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_paramiko_says_why_but_logs_no_traceback(
    answers_garbage: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = answers_garbage
    pin = f"[127.0.0.1]:{port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    target = SftpTarget(host="127.0.0.1", port=port, known_hosts=(pin,))
    credentials = SftpCredentials.model_validate({"username": "district", "password": "not-used"})
    source = tmp_path / "programs.txt"
    source.write_text("01 Import Student ID\n")
    with caplog.at_level(logging.DEBUG), pytest.raises(ConnectionFailed):
        deliver(source, target, credentials, retry=RetryPolicy(attempts=1))
    paramiko_records = [r for r in caplog.records if r.name.split(".")[0] == "paramiko"]
    assert paramiko_records, "paramiko logged nothing: the test did not provoke its error path"
    for record in paramiko_records:
        message = record.getMessage()
        assert message.strip() and not message.startswith("Traceback") and not message[:1].isspace()
        assert "During handling" not in message and message != "EOFError"
        assert record.exc_info is None
    assert {name.split(".")[0] for name in PARAMIKO_LOGGERS} == {"paramiko"}


ROUTED = """
import logging
import programs_bridge.pipeline.wiring  # what the Lambda imports on its first event
logging.getLogger("programs_bridge.delivery.retry").warning("delivery attempt failed, retrying", extra={"attempt": 1})
logging.getLogger("paramiko.transport").error("Exception (client): Error reading SSH protocol banner")
logging.getLogger("paramiko.transport").error("Traceback (most recent call last):")
logging.getLogger("paramiko.transport").error('  File "transport.py", line 2113, in run')
logging.getLogger("paramiko.transport").info("Connected (version 2.0, client OpenSSH_9.2)")
"""


def test_in_lambda_our_modules_and_paramiko_log_json_lines_with_the_reason_and_no_traceback() -> None:
    env = {**os.environ, "AWS_LAMBDA_FUNCTION_NAME": "programs-bridge", "POWERTOOLS_TRACE_DISABLED": "true"}
    done = subprocess.run([sys.executable, "-c", ROUTED], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # nothing through the runtime's plain-text handler
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(line["level"], line["message"]) for line in lines] == [
        ("WARNING", "delivery attempt failed, retrying"),
        ("ERROR", "Exception (client): Error reading SSH protocol banner"),
    ]
    assert all(line["service"] == "programs-bridge" for line in lines) and lines[0]["attempt"] == 1
