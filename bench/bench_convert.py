"""Converter throughput and memory against a bare ``csv.reader`` -> ``csv.writer`` round trip.

Targets (issue 2): converting a 1,000,000-row PowerSchool export takes at most 2.5x the time of the bare
round trip of the same file; the convert's peak RSS is at most 150 MB at 1M rows and within 10% of its
figure at 100k rows (memory must not grow with the file).

Every measured command runs in its own child process, reaped with ``os.wait4`` so each figure is that
child's own peak RSS (``RUSAGE_CHILDREN`` would be the maximum over every child so far).  Each command runs
``REPEATS`` times; the fastest wall time counts (the least disturbed by whatever else the machine does) and
the highest RSS.  A convert run only counts when its report says it read every row.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from programs_bridge.synthetic import generate

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results" / "convert.json"

SIZES = (100_000, 1_000_000)
SEED = 1
DAMAGE = 0.005
REPEATS = 3

RATIO_TARGET = 2.5
RSS_TARGET_MB = 150.0
RSS_GROWTH_TARGET = 0.10

#: The baseline: what any converter has to do at least, read every row and write every row.
ROUNDTRIP = """
import csv, sys
with open(sys.argv[1], encoding="utf-8", newline="") as src, \\
        open(sys.argv[2], "w", encoding="utf-8", newline="") as dst:
    csv.writer(dst, delimiter="\\t", lineterminator="\\n").writerows(csv.reader(src))
"""

#: Exit codes of a convert that did its job: 0 every row valid, 1 some rows rejected (the damage).
CONVERTED = (0, 1)

#: Runs one command and prints its figures as JSON.  It runs in a fresh, minimal interpreter (``-I -S``)
#: because Linux starts a spawned child's peak RSS at its parent's peak (the exec keeps the old address
#: space's high-water mark): spawned straight from this runner, which may have generated a million rows
#: or imported boto3 for another benchmark, every figure would be at least the runner's own.  This way
#: the floor is the measurer's ~9 MB, below what any Python program needs for itself.
MEASURE = """
import json, os, sys, time
log, argv = sys.argv[1], sys.argv[2:]
flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
actions = [(os.POSIX_SPAWN_OPEN, fd, log, flags, 0o644) for fd in (1, 2)]
started = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
code = os.waitstatus_to_exitcode(status)
print(json.dumps({"exit_code": code, "seconds": seconds, "maxrss_kib": usage.ru_maxrss}))
"""


@dataclass(frozen=True, slots=True)
class Measure:
    """One child process: how it ended, how long it took, and its own peak resident memory."""

    exit_code: int
    seconds: float
    peak_rss_mb: float


@dataclass(frozen=True, slots=True)
class Verdict:
    what: str
    value: str
    target: str
    passed: bool


def dataset(rows: int) -> Path:
    """The PowerSchool export of ``rows`` rows, generated on first use and reused afterwards."""
    path = DATA / f"powerschool-{rows}-seed{SEED}-damage{DAMAGE}.csv"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        print(f"generating {path.relative_to(HERE.parent)} ...", flush=True)
        partial = path.with_suffix(".partial")
        generate(partial, "powerschool", rows, seed=SEED, damage=DAMAGE)
        partial.rename(path)  # an interrupted run must not leave a short file to be reused
    return path


def spawn(argv: Sequence[str], log: Path) -> Measure:
    """Run ``argv`` as one child (stdout and stderr to ``log``) and measure that child alone."""
    measurer = [sys.executable, "-I", "-S", "-c", MEASURE, str(log), *argv]
    figures = json.loads(subprocess.run(measurer, check=True, capture_output=True, text=True).stdout)
    # Linux reports ru_maxrss in KiB; the targets are in MB.
    return Measure(figures["exit_code"], figures["seconds"], figures["maxrss_kib"] * 1024 / 1e6)


def best(runs: Sequence[Measure]) -> Measure:
    return Measure(
        exit_code=max(run.exit_code for run in runs),
        seconds=min(run.seconds for run in runs),
        peak_rss_mb=max(run.peak_rss_mb for run in runs),
    )


def converter() -> Path | None:
    """The ``programs-bridge`` console script of this virtualenv (or on PATH), if installed."""
    beside = Path(sys.executable).parent / "programs-bridge"
    if beside.exists():
        return beside
    found = shutil.which("programs-bridge")
    return Path(found) if found else None


def verdicts(convert: dict[int, Measure], baseline: dict[int, Measure]) -> list[Verdict]:
    """Each target, judged on the figures; pure, so the rules are easy to read and to check."""
    small, large = SIZES
    ratio = convert[large].seconds / baseline[large].seconds
    growth = convert[large].peak_rss_mb / convert[small].peak_rss_mb - 1
    return [
        Verdict(
            f"convert time / baseline time at {large:,} rows",
            f"{ratio:.2f}x",
            f"<= {RATIO_TARGET}x",
            ratio <= RATIO_TARGET,
        ),
        Verdict(
            f"convert peak RSS at {large:,} rows",
            f"{convert[large].peak_rss_mb:.1f} MB",
            f"<= {RSS_TARGET_MB:.0f} MB",
            convert[large].peak_rss_mb <= RSS_TARGET_MB,
        ),
        Verdict(
            f"convert peak RSS at {large:,} rows vs {small:,} rows",
            f"{growth:+.1%}",
            f"<= +{RSS_GROWTH_TARGET:.0%}",
            growth <= RSS_GROWTH_TARGET,
        ),
    ]


def table(convert: dict[int, Measure], baseline: dict[int, Measure]) -> list[str]:
    lines = [
        f"{'rows':>10}  {'baseline rows/s':>16}  {'convert rows/s':>15}  {'ratio':>6}  "
        f"{'baseline RSS':>13}  {'convert RSS':>12}"
    ]
    for rows in SIZES:
        base, conv = baseline[rows], convert.get(rows)
        conv_rate = f"{rows / conv.seconds:,.0f}" if conv else "-"
        ratio = f"{conv.seconds / base.seconds:.2f}x" if conv else "-"
        conv_rss = f"{conv.peak_rss_mb:.1f} MB" if conv else "-"
        lines.append(
            f"{rows:>10,}  {rows / base.seconds:>16,.0f}  {conv_rate:>15}  {ratio:>6}  "
            f"{base.peak_rss_mb:>10.1f} MB  {conv_rss:>12}"
        )
    return lines


def measure_all(script: Path | None, work: Path) -> tuple[dict[int, Measure], dict[int, Measure], str]:
    """Baseline and convert for every size; the third value says why convert could not run, if so."""
    baseline: dict[int, Measure] = {}
    convert: dict[int, Measure] = {}
    problem = "" if script else "the programs-bridge console script is not installed (run `make install`)"
    for rows in SIZES:
        source = dataset(rows)
        out, log = work / "out.txt", work / "child.log"
        argv = [sys.executable, "-c", ROUNDTRIP, str(source), str(out)]
        baseline[rows] = best([spawn(argv, log) for _ in range(REPEATS)])
        if problem or script is None:
            continue
        argv = [
            str(script), "convert", str(source), "--profile", "powerschool", "-o", str(out),
            "--report", str(work / "report.json"), "--max-reject-share", "1",
        ]  # fmt: skip
        runs = []
        for _ in range(REPEATS):
            (work / "report.json").unlink(missing_ok=True)  # a stale report must not vouch for this run
            runs.append(spawn(argv, log))
            problem = failure(runs[-1], rows, work / "report.json", log)
            if problem:
                break
        else:
            convert[rows] = best(runs)
    return convert, baseline, problem


def failure(measure: Measure, rows: int, report: Path, log: Path) -> str:
    """Why a convert run does not count (empty when it does): a bad exit, or not every row read."""
    if measure.exit_code not in CONVERTED:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        return f"`programs-bridge convert` exited {measure.exit_code}: {' | '.join(tail)}"
    try:
        summary = json.loads(report.read_text(encoding="utf-8"))
        read, written = summary["rows_read"], summary["rows_written"]
    except (OSError, ValueError, KeyError) as exc:
        return f"`programs-bridge convert` left no usable report ({exc})"
    if read != rows or not 0 < written <= rows:
        return f"`programs-bridge convert` read {read} and wrote {written} of {rows} rows"
    return ""


def run() -> bool:
    script = converter()
    print(
        f"PowerSchool export, {DAMAGE:.1%} damaged rows, best of {REPEATS} runs per figure, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as work:
        convert, baseline, problem = measure_all(script, Path(work))
    for line in table(convert, baseline):
        print(line)
    judged = verdicts(convert, baseline) if not problem else []
    for verdict in judged:
        print(f"{'PASS' if verdict.passed else 'FAIL'}  {verdict.what}: {verdict.value} (target {verdict.target})")
    if problem:
        print(f"NOT MEASURED  convert: {problem}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    figures = {
        "profile": "powerschool",
        "damage": DAMAGE,
        "repeats": REPEATS,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "baseline": {str(rows): asdict(m) | {"rows_per_s": rows / m.seconds} for rows, m in baseline.items()},
        "convert": {str(rows): asdict(m) | {"rows_per_s": rows / m.seconds} for rows, m in convert.items()},
        "targets": [asdict(verdict) for verdict in judged],
        "problem": problem or None,
    }
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {RESULTS.relative_to(HERE.parent)}")
    return not problem and all(verdict.passed for verdict in judged)
