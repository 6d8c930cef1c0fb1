"""The staged file's writes and the duplicate finder's pass 1, in a second process beside the converter.

Why it exists: converting is one Python thread, bound by the GIL, and of its time on a clean export about a
fifth is not conversion at all but what follows it for every written row: encoding and writing the line to
the staged file, hashing its record key and testing and setting the key's bit (``dedupe.DuplicateFinder``).
None of that feeds back into converting the next row, so on a machine with a second core it can run there,
and the converter only encodes each batch once and hands it over a pipe.  Measured on the bench's 1M-row
export (2 cores): the first pass took 3.6-3.7 s this way against 4.6-4.9 s in one process.

The second process learns the keys from the rendered lines (``dedupe.keys_of_lines``: the record key is
always a rendered row's own fields) and writes the same spool of (hash, export line) pairs as the finder
does in process, into a file the converter opened, so pass 2 reads it as if pass 1 had run at home
(``DuplicateFinder(spool, learnt=...)``).  Its hashes are its own (``PYTHONHASHSEED`` differs between
processes), which does not matter: pass 1's hashes are only compared with each other, and pass 2 compares
keys exactly.

It is only worth its start on a large file and with CPU time to spare (``WORTH_FROM_CPUS``), so ``wanted``
decides; the output, the findings and the report are the same either way
(``tests/convert/test_staging_process.py``).
Nothing the second process says names a student: it reports only counts, and an exception by its type.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
from array import array
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import IO

from programs_bridge.convert.dedupe import DuplicateFinder, PassOne, keys_of_lines

#: Worth a second process from this size of export on disk (about 160,000 rows): below it, starting the
#: process costs more than it saves.
WORTH_FROM_BYTES = 16 << 20

_FRAME = struct.Struct("<qq?")  # a batch: its text's bytes, its rows, and whether its keys are folded
_PIPE_BYTES = 1 << 20  # the pipe's buffer (Linux): fewer switches between the processes
_NEWLINES = {"lf": "\n", "crlf": "\r\n"}


class StagingProcessError(OSError):
    """The second process ended before it had staged every row: the conversion cannot be trusted.  An
    ``OSError``, as a failed write of the staged file in process would be; when that is what happened in the
    second process (a full disk), the converter raises the ``OSError`` itself, with its errno."""


#: ``on`` or ``off`` overrides ``wanted``: to compare the two on one file (``make bench``), or to keep a
#: deployment in one process.
SETTING = "PB_STAGING_PROCESS"
_ON, _OFF = ("on", "1", "true", "yes"), ("off", "0", "false", "no")


def wanted(source_bytes: int) -> bool:
    """Whether a file of ``source_bytes`` on disk is worth a second process on this machine (or ``SETTING``
    says)."""
    setting = os.environ.get(SETTING, "").strip().lower()
    if setting in _ON or setting in _OFF:
        return setting in _ON
    return os.name == "posix" and source_bytes >= WORTH_FROM_BYTES and _cpus() >= WORTH_FROM_CPUS


#: CPU time, measured on the bench's 1M-row export (best of five, alternating): the converter alone spends
#: T (5.03 s); with the second process, 0.85 T in wall time (4.29 s) and 1.2 T of CPU in all (6.06 s: the
#: second process reads the keys back from the lines).  With C CPUs' worth of time a second that takes
#: max(0.85 T, 1.2 T / C) against T / min(C, 1): a gain only from C = 1.2.  Lambda shows two CPUs at any
#: memory size but gives one CPU's worth of time per 1,769 MB (docs/deploy.md, "Sizing the function"), so
#: its default 2,048 MB (1.16) stays in one process, and 2,240 MB or more (1.27) gets two.
WORTH_FROM_CPUS = 1.25
_LAMBDA_MB_PER_CPU = 1769
_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def _cpus() -> float:
    """CPUs' worth of time a second this process may use: the CPUs it may run on, unless a cgroup quota or
    Lambda's memory size gives less."""
    cpus: float = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    with suppress(OSError, ValueError):  # cgroup v2: "max 100000", or a quota and its period
        quota, period = _CGROUP_CPU_MAX.read_text().split()
        if quota != "max":
            cpus = min(cpus, int(quota) / int(period))
    with suppress(KeyError, ValueError):  # set by Lambda: the function's memory in MB
        cpus = min(cpus, int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]) / _LAMBDA_MB_PER_CPU)
    return cpus


class StagingProcess:
    """The converter's end of the second process: batches go in, what pass 1 learnt comes out."""

    def __init__(self, staged: IO[str], spool: IO[bytes], positions: tuple[int, int, int, int, int], newline: str):
        """``staged``: the staged file, header written; ``spool``: the file pass 2 will read the pairs from.
        Both are shared with the second process, which writes them from where they stand."""
        staged.flush()
        fds = (staged.fileno(), spool.fileno())
        name = next(key for key, value in _NEWLINES.items() if value == newline)
        # -P: not the current directory first on the path (``-m`` puts it there): a json.py in the folder a
        # clerk runs the converter from must not run in the second process.  The path is the converter's own.
        argv = [sys.executable, "-P", "-m", __name__, *map(str, fds), name, *map(str, positions)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
        self._process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=fds, env=env)
        assert self._process.stdin is not None
        self._pipe = self._process.stdin
        with suppress(AttributeError, OSError):  # Linux only; a smaller pipe is only slower
            import fcntl

            fcntl.fcntl(self._pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)

    def send(self, block: str, source_lines: Sequence[int], *, folded: bool) -> None:
        """Stage a batch of written rows (``block``: their lines, each with its line end) with their export
        lines; ``folded`` as for ``DuplicateFinder.add``."""
        if not source_lines:
            return
        data = block.encode("utf-8")
        try:
            self._pipe.write(_FRAME.pack(len(data), len(source_lines), folded))
            self._pipe.write(data)
            self._pipe.write(array("q", source_lines))
        except BrokenPipeError:
            raise self._failure() from None

    def finish(self) -> PassOne:
        """Wait for every row to be staged; what pass 1 learnt."""
        try:
            self._pipe.close()
        except BrokenPipeError:
            raise self._failure() from None
        assert self._process.stdout is not None
        answer = self._process.stdout.read()  # before waiting: the answer may be larger than the pipe holds
        if self._process.wait() != 0:
            raise self._failure(answer)
        head, _, rest = answer.partition(b"\n")
        counts = json.loads(head)
        suspects = array("q")
        suspects.frombytes(rest[: 8 * counts["suspects"]])
        bits = rest[8 * counts["suspects"] :] if counts["bits"] else None
        return PassOne(counts["rows"], counts["repeats"], suspects, bits)

    def close(self) -> None:
        """End the process whatever state it is in (after ``finish``, it has ended already)."""
        if self._process.poll() is None:
            with suppress(OSError):
                self._pipe.close()
            self._process.kill()
        self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def _failure(self, answer: bytes | None = None) -> OSError:
        """What went wrong in the second process (its ``answer`` on stdout, read here if not given): the
        ``OSError`` it met, or that it ended."""
        assert self._process.stdout is not None
        if answer is None:
            answer = self._process.stdout.read()  # it has stopped reading: it ends, and says why first
        code = self._process.wait()
        with suppress(ValueError, KeyError, TypeError):  # no answer, or not one of ours
            number = json.loads(answer)["errno"]
            return OSError(number, os.strerror(number))
        return StagingProcessError(f"the staging process ended (exit code {code}) before every row was staged")


def main(argv: Sequence[str]) -> int:
    """The second process: batches from standard input to the staged file and pass 1; counts to stdout.

    Ctrl-C is the converter's to handle (it ends this process); this one ignores it, so a terminal's
    interrupt, sent to both, never prints a traceback from here."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    staged_fd, spool_fd, newline_name, *at = argv
    newline, positions = _NEWLINES[newline_name], tuple(map(int, at))
    assert len(positions) == 5
    source = sys.stdin.buffer
    with os.fdopen(int(staged_fd), "wb", buffering=1 << 20) as staged, os.fdopen(int(spool_fd), "wb") as spool:
        finder = DuplicateFinder(spool)
        while header := source.read(_FRAME.size):
            size, rows, folded = _FRAME.unpack(header)
            data = source.read(size)
            lines = array("q")
            lines.frombytes(source.read(8 * rows))
            staged.write(data)
            texts = data.decode("utf-8").split(newline)
            texts.pop()  # the empty text after the last line end
            finder.add(keys_of_lines(texts, positions), lines, folded=folded)
        learnt = finder.pass_one()
    counts = {"rows": learnt.rows, "repeats": learnt.repeats, "suspects": len(learnt.suspects)}
    out = sys.stdout.buffer
    out.write(json.dumps({**counts, "bits": learnt.suspect_bits is not None}).encode() + b"\n")
    out.write(learnt.suspects.tobytes())
    out.write(learnt.suspect_bits or b"")
    out.flush()
    return 0


def _report(exc: BaseException) -> int:
    """The exit code for what ended the second process, said without its text (which may quote a row); a
    converter gone already (a broken pipe) is told nothing."""
    with suppress(OSError):
        if isinstance(exc, OSError) and exc.errno:  # a full disk, most likely: the converter raises it
            sys.stdout.buffer.write(json.dumps({"errno": exc.errno}).encode() + b"\n")
            sys.stdout.flush()
            return 74
        print(f"staging process: {type(exc).__name__}", file=sys.stderr)
    return 70


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
    except BaseException as exc:  # every end is said, and never as a traceback
        code = _report(exc)
    with suppress(OSError):  # the converter may have gone: nothing left to tell
        sys.stdout.flush()
    os._exit(code)
