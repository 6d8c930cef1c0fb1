"""SFTP upload throughput: our adapter against OpenSSH's ``sftp`` client, same server, same file, same run.

Loopback hides the round trip that dominates a real upload to Illuminate (and this machine's kernel has
no netem), so each client also uploads through a small delay-line TCP proxy of our own that holds every
chunk for :data:`DELAY_S` in each direction before passing it on.  The proxy runs in its own process so
it never competes with the client under test for the GIL.

Target (issue 4): through the proxy, our throughput >= 2/3 of OpenSSH's.  Loopback figures are
reported for context.  Results go to ``bench/results/sftp.json``.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path

from tests.support.sshd import HOST, KeyPair, SshdServer, generate_key, running_sshd

from programs_bridge.delivery import RetryPolicy, SftpCredentials, SftpTarget, deliver

DELAY_S = 0.020
FILE_MB = 150
REPEATS = 3
TARGET_RATIO = 2 / 3
ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data" / "sftp-programs.txt"
RESULTS = ROOT / "results" / "sftp.json"


# --- the delay-line proxy (runs in a child process) ---------------------------------------------


async def _delayed_pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Forward bytes, each chunk leaving ``delay`` seconds after it arrived; order and rate preserved."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def receive() -> None:
        while data := await reader.read(256 * 1024):
            queue.put_nowait((loop.time() + delay, data))
        queue.put_nowait((loop.time() + delay, b""))

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    try:
        await asyncio.gather(receive(), send())
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _serve_proxy(upstream_port: int, delay: float, ready: Connection) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(HOST, upstream_port)
        await asyncio.gather(
            _delayed_pipe(client_reader, server_writer, delay),
            _delayed_pipe(server_reader, client_writer, delay),
        )

    server = await asyncio.start_server(handle, HOST, 0)
    ready.send(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def _proxy_main(upstream_port: int, delay: float, ready: Connection) -> None:
    asyncio.run(_serve_proxy(upstream_port, delay, ready))


class DelayProxy:
    """A child process proxying 127.0.0.1:<port> to the server with ``delay`` added each way."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._process = context.Process(target=_proxy_main, args=(upstream_port, delay, child), daemon=True)
        self._process.start()
        self.port: int = parent.recv()

    def close(self) -> None:
        self._process.terminate()
        self._process.join()


# --- the two clients ------------------------------------------------------------------------------


def _make_input(path: Path, megabytes: int) -> None:
    """A synthetic, programs.txt-shaped file (tab-delimited, no real data); reused between runs."""
    if path.exists() and path.stat().st_size == megabytes * 1_000_000:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    row = "900{:07d}\t{:06d}\t2025-2026\t504\t2025-08-20\t\tLEP\n"
    target = megabytes * 1_000_000
    with path.open("w") as out:
        written = n = 0
        while written < target:
            block = "".join(row.format(i % 10_000_000, i % 1_000_000) for i in range(n, n + 10_000))
            block = block[: target - written]
            out.write(block)
            written += len(block)
            n += 10_000


def _ours(server: SshdServer, key: KeyPair, port: int, known_hosts: list[str], source: Path) -> None:
    target = SftpTarget(host=HOST, port=port, known_hosts=tuple(known_hosts), remote_name="ours.txt")
    credentials = SftpCredentials.model_validate({"username": server.user, "private_key": key.private_text})
    deliver(source, target, credentials, retry=RetryPolicy(attempts=1))


def _openssh(server: SshdServer, key: KeyPair, port: int, known_hosts_file: Path, source: Path) -> None:
    command = [
        *("sftp", "-q", "-b", "-", "-i", str(key.private_path), "-P", str(port)),
        *("-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"),
        *("-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts_file}"),
        f"{server.user}@{HOST}",
    ]
    subprocess.run(command, input=f"put {source} openssh.txt\n", text=True, check=True, capture_output=True)


def _rate(upload: Callable[[], None], size: int, repeats: int) -> float:
    """Median MB/s (10^6 bytes) over ``repeats`` uploads, connection set-up included."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        upload()
        rates.append(size / 1e6 / (time.perf_counter() - start))
    return statistics.median(rates)


def run() -> bool:
    _make_input(DATA, FILE_MB)
    size = DATA.stat().st_size
    figures: dict[str, float] = {}
    with running_sshd() as server, tempfile.TemporaryDirectory() as scratch:
        key = generate_key(Path(scratch), "ed25519")
        server.authorize(key.public_line)
        proxy = DelayProxy(server.port, DELAY_S)
        try:
            known_hosts = [*server.known_hosts_lines(), *_lines_for_port(server, proxy.port)]
            known_hosts_file = Path(scratch) / "known_hosts"
            known_hosts_file.write_text("\n".join(known_hosts) + "\n")
            for path_name, port in (("proxy", proxy.port), ("loopback", server.port)):
                ours = partial(_ours, server, key, port, known_hosts, DATA)
                openssh = partial(_openssh, server, key, port, known_hosts_file, DATA)
                figures[f"ours_{path_name}_mb_s"] = _rate(ours, size, REPEATS)
                figures[f"openssh_{path_name}_mb_s"] = _rate(openssh, size, REPEATS)
            for name in ("ours.txt", "openssh.txt"):
                assert (server.sftp_root / name).stat().st_size == size, f"{name} incomplete"
        finally:
            proxy.close()
    ratio = figures["ours_proxy_mb_s"] / figures["openssh_proxy_mb_s"]
    passed = ratio >= TARGET_RATIO
    for path_name in ("proxy", "loopback"):
        print(
            f"sftp {path_name:8} ours {figures[f'ours_{path_name}_mb_s']:7.1f} MB/s   "
            f"openssh {figures[f'openssh_{path_name}_mb_s']:7.1f} MB/s"
        )
    print(
        f"sftp ours/openssh through the {DELAY_S * 1000:.0f} ms-each-way proxy: {ratio:.2f} "
        f"(target >= {TARGET_RATIO:.2f}) {'PASS' if passed else 'FAIL'}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "file_bytes": size,
                "delay_each_way_s": DELAY_S,
                "repeats_median_of": REPEATS,
                **{name: round(value, 2) for name, value in figures.items()},
                "ratio_proxy": round(ratio, 3),
                "target_ratio": round(TARGET_RATIO, 3),
                "passed": passed,
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            },
            indent=2,
        )
        + "\n"
    )
    return passed


def _lines_for_port(server: SshdServer, port: int) -> list[str]:
    """The server's known_hosts lines re-addressed to the proxy's port (same keys, different door)."""
    return [line.replace(f"[{HOST}]:{server.port}", f"[{HOST}]:{port}", 1) for line in server.known_hosts_lines()]
