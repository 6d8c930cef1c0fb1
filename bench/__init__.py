"""Performance benchmarks: ``make bench`` (``python -m bench [NAME ...]``), never part of ``make test``.

Each ``bench/bench_NAME.py`` module has ``run() -> bool``: it measures, prints its figures with PASS/FAIL
against the targets in the issues, writes them as JSON to ``bench/results/NAME.json``, and returns True only
when every target is met.  Generated inputs live in ``bench/data/`` (git-ignored) and are reused between
runs; delete that folder to regenerate them.
"""

import os

#: The one size every benchmark scales by: the rows of its main export (and of its ledger).
ROWS_VARIABLE = "PB_BENCH_ROWS"
DEFAULT_ROWS = 1_000_000


def bench_rows() -> int:
    """``PB_BENCH_ROWS`` (default 1,000,000): a smaller figure gives a quick run of every benchmark."""
    return int(os.environ.get(ROWS_VARIABLE, DEFAULT_ROWS))
