"""``python -m bench [NAME ...]``: run every benchmark module, or only the named ones (``convert``).

Exit code 0 when every target was met, 1 when one was missed (or a benchmark could not run), 64 for an
unknown benchmark name.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Sequence

import bench

PREFIX = "bench_"


def available() -> dict[str, str]:
    """Benchmark name -> module, found by file name so a new ``bench_*.py`` needs no registration."""
    return {
        info.name.removeprefix(PREFIX): f"{bench.__name__}.{info.name}"
        for info in pkgutil.iter_modules(bench.__path__)
        if info.name.startswith(PREFIX)
    }


def main(argv: Sequence[str]) -> int:
    modules = available()
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
