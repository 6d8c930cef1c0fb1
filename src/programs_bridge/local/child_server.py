"""A local server as a child process: started, waited for until it answers, and always stopped.

moto and dynalite run this way (``moto_server``, ``dynalite_server``): a child process of their own keeps the
GIL, memory figures and crash behaviour of the code under test honest, and one way to start and stop them
means a server that dies at start-up, or never answers, fails the same clear way for both.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager


@contextmanager
def serving(
    argv: Sequence[str], env: Mapping[str, str], ready: Callable[[], bool], what: str, startup_timeout: float
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` until the block ends; enter the block once ``ready()`` is true (polled every 0.1 s)."""
    process = subprocess.Popen(list(argv), env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + startup_timeout
        while not ready():
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with code {process.returncode} before it was ready")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not answer in {startup_timeout:g} s")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
