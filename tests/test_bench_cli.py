"""``python -m bench --help`` lists every benchmark and the variables they read; it never runs one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_help_lists_every_benchmark_and_the_size_variable() -> None:
    done = bench("--help")
    assert done.returncode == 0, done.stderr
    modules = sorted(path.stem.removeprefix("bench_") for path in (ROOT / "bench").glob("bench_*.py"))
    listed = [line.split()[0] for line in done.stdout.split("benchmarks:\n", 1)[1].split("\n\n", 1)[0].splitlines()]
    assert listed == modules
    assert "PB_BENCH_ROWS" in done.stdout


def test_an_unknown_benchmark_is_a_usage_error() -> None:
    done = bench("no-such-bench")
    assert done.returncode == 64
    assert "available:" in done.stdout
