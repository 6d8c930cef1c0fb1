"""Performance benchmarks: ``make bench`` (``python -m bench [NAME ...]``), never part of ``make test``.

Each ``bench/bench_NAME.py`` module has ``run() -> bool``: it measures, prints its figures with PASS/FAIL
against the targets in the issues, writes them as JSON to ``bench/results/NAME.json``, and returns True only
when every target is met.  Generated inputs live in ``bench/data/`` (git-ignored) and are reused between
runs; delete that folder to regenerate them.
"""
