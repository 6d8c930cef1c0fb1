"""``python -m bench [NAME ...]``: run every benchmark module, or only the named ones (``convert``).

``--help`` lists them, each with the first line of its docstring, and the variables they read.  Exit code 0
when every target was met (or after ``--help``), 1 when one was missed (or a benchmark could not run), 64 for
an unknown benchmark name.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

import bench

PREFIX = "bench_"


def available() -> dict[str, str]:
    """Benchmark name -> module, found by file name so a new ``bench_*.py`` needs no registration."""
    return {
        info.name.removeprefix(PREFIX): f"{bench.__name__}.{info.name}"
        for info in pkgutil.iter_modules(bench.__path__)
        if info.name.startswith(PREFIX)
    }


def summary(module: str) -> str:
    """The first line of a benchmark module's docstring, read without importing it (imports are heavy)."""
    path = Path(bench.__path__[0]) / f"{module.rsplit('.', 1)[-1]}.py"
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return docstring.split("\n\n", 1)[0].replace("\n", " ")


def usage(modules: dict[str, str]) -> str:
    width = max(map(len, modules))
    lines = [
        'usage: python -m bench [NAME ...]   (make bench [BENCH="NAME ..."]); no NAME runs them all',
        "",
        "benchmarks:",
        *(f"  {name:<{width}}  {summary(modules[name])}" for name in sorted(modules)),
        "",
        "variables:",
        f"  {bench.ROWS_VARIABLE}      rows of every main export and ledger (default {bench.DEFAULT_ROWS:,})",
        "  PB_BENCH_DYNAMODB  'moto' keeps DynamoDB on moto even when dynalite is installed (bench/stack.py)",
        "",
        "exit code: 0 every target met, 1 a target missed, 64 an unknown name",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    modules = available()
    if any(arg in ("-h", "--help") for arg in argv):
        print(usage(modules))
        return 0
    names = [name.removeprefix(PREFIX) for name in argv] or sorted(modules)
    unknown = [name for name in names if name not in modules]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(sorted(modules))}")
        return 64
    missed = []
    for name in names:
        print(f"== bench {name}", flush=True)
        if not importlib.import_module(modules[name]).run():
            missed.append(name)
    if missed:
        print(f"targets missed in: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
