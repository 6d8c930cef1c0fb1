"""Converter throughput and memory against a bare ``csv.reader`` -> ``csv.writer`` round trip.

Targets (issue 13): converting the export takes at most 1.5x the time of the bare round trip of the same
file, at 1M and at 2M rows (``PB_BENCH_ROWS`` and twice it), measured in the same run: the column path for
clean rows (``convert/columns.py``).  Baseline and convert alternate, so a disturbance of the machine hits both.

Targets (issue 2): converting a 1,000,000-row PowerSchool export takes at most 2.5x the time of the bare
round trip of the same file; the convert's peak RSS is at most 150 MB at 1M rows and within 10% of its
figure at 100k rows (memory must not grow with the file).

Targets (issue 9): the same holds whatever the file holds.  Three shapes, at 100k and 2M rows: a clean
export; an export appended to itself (a real SIS mistake: every record twice, half the rows merged by the
duplicate finder's pass 2); and one row repeated 2M times, gzipped.  Each shape's peak RSS is at most
150 MB at both sizes and within 10% between them; the figures are shown as ratios to the clean 100k
figure of the same run (the baseline), with the time of each.  The 2M shapes take minutes each, so each
shape runs ``SHAPE_REPEATS`` times (its peak RSS, the point, varies by well under 1% between runs).

Every measured command runs in its own child process, reaped with ``os.wait4`` so each figure is that
child's own peak RSS (``RUSAGE_CHILDREN`` would be the maximum over every child so far).  Each command runs
``REPEATS`` times; the fastest wall time counts (the least disturbed by whatever else the machine does) and
the highest RSS.  A convert run only counts when its report says it read every row.

A large file is converted in two processes (``convert/staging_process.py``); the peak RSS is then the two
together, and CPU time is shown beside wall time.  The smaller size of each series runs in the arrangement
the largest file of the series gets (``PB_STAGING_PROCESS``), so flat means flat, not one process against two.
"""

from __future__ import annotations

import gzip
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

from bench import bench_rows
from programs_bridge.convert import staging_process
from programs_bridge.local.synthetic import generate

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results" / "convert.json"

ROWS = bench_rows()
SIZES = (min(100_000, ROWS // 10), ROWS, 2 * ROWS)  # the small one is where peak RSS must stay flat from
SEED = 1
DAMAGE = 0.005
REPEATS = 3

SHAPES = ("clean", "appended to itself", "one row repeated, gzip")
SHAPE_SIZES = (SIZES[0], 2 * ROWS)
SHAPE_REPEATS = 1

RATIO_TARGET = 2.5  # issue 2, at ROWS
FAST_RATIO_TARGET = 1.5  # issue 13, at ROWS and 2 * ROWS
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
#:
#: A converter may run a second process beside itself (``convert/staging_process.py``), and ``ru_maxrss``
#: is the peak of the largest process, not of the two together: so the measurer also samples, every
#: 10 ms, the resident memory of the child and all its descendants summed (``/proc``), and the peak is the
#: larger of the two figures.  A sum of RSS counts pages the processes share twice: it errs high.
MEASURE = """
import json, os, sys, time
log, argv = sys.argv[1], sys.argv[2:]
flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
actions = [(os.POSIX_SPAWN_OPEN, fd, log, flags, 0o644) for fd in (1, 2)]

def tree(pid):
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                for child in children.read().split():
                    yield from tree(int(child))
        yield pid
    except OSError:
        return

def resident_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

started = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
tree_kib = 0
while True:
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done:
        break
    tree_kib = max(tree_kib, sum(map(resident_kib, tree(pid))))
    time.sleep(0.01)
seconds = time.perf_counter() - started
code = os.waitstatus_to_exitcode(status)
cpu = usage.ru_utime + usage.ru_stime
peak = max(usage.ru_maxrss, tree_kib)
print(json.dumps({"exit_code": code, "seconds": seconds, "maxrss_kib": peak, "cpu_seconds": cpu}))
"""


@dataclass(frozen=True, slots=True)
class Measure:
    """One child process: how it ended, how long it took, and its own peak resident memory."""

    exit_code: int
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float
    """User and system time of the child and of the processes it waited for (the converter's second process,
    ``convert/staging_process.py``): the wall time is what the targets judge, this is what it cost."""


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


def shape_dataset(shape: str, rows: int) -> Path:
    """The PowerSchool export of ``shape`` with ``rows`` data rows, made on first use and reused afterwards."""
    name = {SHAPES[0]: "clean", SHAPES[1]: "appended", SHAPES[2]: "repeated"}[shape]
    path = DATA / f"powerschool-{rows}-seed{SEED}-{name}.csv{'.gz' if shape == SHAPES[2] else ''}"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    print(f"generating {path.relative_to(HERE.parent)} ...", flush=True)
    partial = path.with_name(path.name + ".partial")
    if shape == SHAPES[0]:
        generate(partial, "powerschool", rows, seed=SEED)
    elif shape == SHAPES[1]:
        half = shape_dataset(SHAPES[0], rows // 2)
        with half.open("rb") as first, partial.open("wb") as out:
            shutil.copyfileobj(first, out, 1 << 20)
            first.seek(0)
            first.readline()  # the header, once
            shutil.copyfileobj(first, out, 1 << 20)
    else:
        header, row = shape_dataset(SHAPES[0], 100_000).read_bytes().split(b"\n", 2)[:2]
        with gzip.open(partial, "wb", compresslevel=6) as out:
            out.write(header + b"\n")
            for _ in range(rows // 10_000):
                out.write((row + b"\n") * 10_000)
    partial.rename(path)  # an interrupted run must not leave a short file to be reused
    return path


def spawn(argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Measure:
    """Run ``argv`` as one child (stdout and stderr to ``log``; ``env`` added to the environment) and
    measure that child alone (with the processes it starts)."""
    measurer = [sys.executable, "-I", "-S", "-c", MEASURE, str(log), *argv]
    environment = {**os.environ, **(env or {})}
    run = subprocess.run(measurer, check=True, capture_output=True, text=True, env=environment)
    figures = json.loads(run.stdout)
    # Linux reports ru_maxrss in KiB; the targets are in MB.
    mb = figures["maxrss_kib"] * 1024 / 1e6
    return Measure(figures["exit_code"], figures["seconds"], mb, figures["cpu_seconds"])


def best(runs: Sequence[Measure]) -> Measure:
    return Measure(
        exit_code=max(run.exit_code for run in runs),
        seconds=min(run.seconds for run in runs),
        peak_rss_mb=max(run.peak_rss_mb for run in runs),
        cpu_seconds=min(run.cpu_seconds for run in runs),
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
    small, large, largest = SIZES
    judged = [
        _ratio(convert, baseline, large, RATIO_TARGET, "issue 2"),
        *(_ratio(convert, baseline, rows, FAST_RATIO_TARGET, "issue 13") for rows in (large, largest)),
    ]
    for rows in (large, largest):
        growth = convert[rows].peak_rss_mb / convert[small].peak_rss_mb - 1
        judged += [
            Verdict(
                f"convert peak RSS at {rows:,} rows",
                f"{convert[rows].peak_rss_mb:.1f} MB",
                f"<= {RSS_TARGET_MB:.0f} MB",
                convert[rows].peak_rss_mb <= RSS_TARGET_MB,
            ),
            Verdict(
                f"convert peak RSS at {rows:,} rows vs {small:,} rows",
                f"{growth:+.1%}",
                f"<= +{RSS_GROWTH_TARGET:.0%}",
                growth <= RSS_GROWTH_TARGET,
            ),
        ]
    return judged


def _ratio(convert: dict[int, Measure], baseline: dict[int, Measure], rows: int, target: float, issue: str) -> Verdict:
    ratio = convert[rows].seconds / baseline[rows].seconds
    return Verdict(
        f"convert time / baseline time at {rows:,} rows ({issue})", f"{ratio:.2f}x", f"<= {target}x", ratio <= target
    )


def table(convert: dict[int, Measure], baseline: dict[int, Measure]) -> list[str]:
    lines = [
        f"{'rows':>10}  {'baseline rows/s':>16}  {'convert rows/s':>15}  {'ratio':>6}  "
        f"{'baseline RSS':>13}  {'convert RSS':>12}  {'CPU ratio':>9}"
    ]
    for rows in SIZES:
        base, conv = baseline[rows], convert.get(rows)
        conv_rate = f"{rows / conv.seconds:,.0f}" if conv else "-"
        ratio = f"{conv.seconds / base.seconds:.2f}x" if conv else "-"
        conv_rss = f"{conv.peak_rss_mb:.1f} MB" if conv else "-"
        cpu = f"{conv.cpu_seconds / base.cpu_seconds:.2f}x" if conv else "-"
        lines.append(
            f"{rows:>10,}  {rows / base.seconds:>16,.0f}  {conv_rate:>15}  {ratio:>6}  "
            f"{base.peak_rss_mb:>10.1f} MB  {conv_rss:>12}  {cpu:>9}"
        )
    return lines


def like_the_largest(largest: Path) -> dict[str, str]:
    """The setting that runs a smaller file as the converter runs ``largest``: in two processes or one
    (``convert/staging_process.py`` chooses by size).  Peak RSS is judged flat between sizes, so the sizes
    are compared in the same arrangement; the step between one process and two is not growth."""
    return {staging_process.SETTING: "on" if staging_process.wanted(largest.stat().st_size) else "off"}


def measure_all(script: Path | None, work: Path) -> tuple[dict[int, Measure], dict[int, Measure], str]:
    """Baseline and convert for every size, alternating run by run; the third value says why convert could
    not run, if so.  The smallest size runs like the largest (``like_the_largest``)."""
    baseline: dict[int, Measure] = {}
    convert: dict[int, Measure] = {}
    problem = "" if script else "the programs-bridge console script is not installed (run `make install`)"
    setting = like_the_largest(dataset(SIZES[-1]))
    print(f"the {SIZES[0]:,}-row convert runs with {staging_process.SETTING}={setting[staging_process.SETTING]}, "
          "as the largest file does by its size", flush=True)  # fmt: skip
    for rows in SIZES:
        source = dataset(rows)
        out, log = work / "out.txt", work / "child.log"
        argv = [sys.executable, "-c", ROUNDTRIP, str(source), str(out)]
        rounds, runs = [], []
        for _ in range(REPEATS):
            rounds.append(spawn(argv, log))
            if problem or script is None:
                continue
            env = setting if rows == SIZES[0] else None
            measured, problem = measure_convert(script, source, rows, work, 1, env)
            if measured is not None:
                runs.append(measured)
        baseline[rows] = best(rounds)
        if runs and not problem:
            convert[rows] = best(runs)
    return convert, baseline, problem


def measure_convert(
    script: Path, source: Path, rows: int, work: Path, repeats: int, env: dict[str, str] | None = None
) -> tuple[Measure | None, str]:
    """``programs-bridge convert`` of ``source`` (``rows`` data rows), best of ``repeats``; or why not."""
    out, log, report = work / "out.txt", work / "child.log", work / "report.json"
    argv = [
        str(script), "convert", str(source), "--profile", "powerschool", "-o", str(out),
        "--report", str(report), "--max-reject-share", "1",
    ]  # fmt: skip
    runs = []
    for _ in range(repeats):
        report.unlink(missing_ok=True)  # a stale report must not vouch for this run
        runs.append(spawn(argv, log, env))
        problem = failure(runs[-1], rows, report, log)
        if problem:
            return None, problem
    return best(runs), ""


Shapes = dict[tuple[str, int], Measure]


def measure_shapes(script: Path | None, work: Path) -> tuple[Shapes, str]:
    """Convert of every shape at every size (the clean 100k first: the baseline); or why not."""
    if script is None:
        return {}, "the programs-bridge console script is not installed (run `make install`)"
    figures: Shapes = {}
    small, large = SHAPE_SIZES
    settings = {shape: like_the_largest(shape_dataset(shape, large)) for shape in SHAPES}
    for rows in SHAPE_SIZES:
        for shape in SHAPES:
            env = settings[shape] if rows == small else None
            measured, problem = measure_convert(script, shape_dataset(shape, rows), rows, work, SHAPE_REPEATS, env)
            if measured is None:
                return figures, f"{shape}, {rows:,} rows: {problem}"
            figures[shape, rows] = measured
    return figures, ""


def shape_verdicts(figures: Shapes) -> list[Verdict]:
    """Each shape's peak RSS at each size within budget, and flat between the sizes."""
    small, large = SHAPE_SIZES
    judged = []
    for shape in SHAPES:
        for rows in SHAPE_SIZES:
            rss = figures[shape, rows].peak_rss_mb
            judged.append(
                Verdict(
                    f"{shape}: convert peak RSS at {rows:,} rows",
                    f"{rss:.1f} MB",
                    f"<= {RSS_TARGET_MB:.0f} MB",
                    rss <= RSS_TARGET_MB,
                )
            )
        growth = figures[shape, large].peak_rss_mb / figures[shape, small].peak_rss_mb - 1
        judged.append(
            Verdict(
                f"{shape}: convert peak RSS at {large:,} rows vs {small:,} rows",
                f"{growth:+.1%}",
                f"<= +{RSS_GROWTH_TARGET:.0%}",
                abs(growth) <= RSS_GROWTH_TARGET,
            )
        )
    return judged


def shape_table(figures: Shapes) -> list[str]:
    """Peak RSS as a ratio to the clean run at the smaller size (the baseline), seconds as a ratio to the clean
    run of the same size."""
    base = figures.get((SHAPES[0], SHAPE_SIZES[0]))
    lines = [
        f"{'shape':<24}  {'rows':>10}  {'peak RSS':>10}  {'x baseline':>12}  {'seconds':>8}  "
        f"{'rows/s':>8}  {'x clean time':>12}"
    ]
    for rows in SHAPE_SIZES:
        clean = figures.get((SHAPES[0], rows))
        for shape in SHAPES:
            measured = figures.get((shape, rows))
            if measured is None:
                continue
            rss_ratio = f"{measured.peak_rss_mb / base.peak_rss_mb:.2f}x" if base else "-"
            time_ratio = f"{measured.seconds / clean.seconds:.2f}x" if clean else "-"
            lines.append(
                f"{shape:<24}  {rows:>10,}  {measured.peak_rss_mb:>7.1f} MB  {rss_ratio:>12}  "
                f"{measured.seconds:>8.1f}  {rows / measured.seconds:>8,.0f}  {time_ratio:>12}"
            )
    return lines


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
        report(judged, problem)
        print(
            f"shapes (issue 9): {', '.join(SHAPES)}; {SHAPE_REPEATS} run(s) per figure; baseline: clean, "
            f"{SHAPE_SIZES[0]:,} rows, this run",
            flush=True,
        )
        shapes, shapes_problem = measure_shapes(script, Path(work))
    for line in shape_table(shapes):
        print(line)
    shapes_judged = shape_verdicts(shapes) if not shapes_problem else []
    report(shapes_judged, shapes_problem)
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
        "shapes": {
            "repeats": SHAPE_REPEATS,
            "baseline": {"shape": SHAPES[0], "rows": SHAPE_SIZES[0]},
            "figures": [
                {"shape": shape, "rows": rows, **asdict(m), "rss_vs_baseline": rss_ratio(shapes, m)}
                for (shape, rows), m in shapes.items()
            ],
            "targets": [asdict(verdict) for verdict in shapes_judged],
            "problem": shapes_problem or None,
        },
    }
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {RESULTS.relative_to(HERE.parent)}")
    passed = all(verdict.passed for verdict in [*judged, *shapes_judged])
    return not problem and not shapes_problem and passed


def report(judged: list[Verdict], problem: str) -> None:
    for verdict in judged:
        print(f"{'PASS' if verdict.passed else 'FAIL'}  {verdict.what}: {verdict.value} (target {verdict.target})")
    if problem:
        print(f"NOT MEASURED  convert: {problem}", flush=True)


def rss_ratio(figures: Shapes, measured: Measure) -> float | None:
    base = figures.get((SHAPES[0], SHAPE_SIZES[0]))
    return round(measured.peak_rss_mb / base.peak_rss_mb, 3) if base else None
