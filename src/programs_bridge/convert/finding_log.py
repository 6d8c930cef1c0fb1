"""Every finding of a run, without holding them all in memory.

A damaged million-row export can carry tens of thousands of findings.  The log keeps counts and the first few
in memory (for the human summary) and spools the rest to a temporary JSON-lines file that the report streams
from, so memory stays flat however bad the file is.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from programs_bridge.convert.findings import Finding, Severity

_SUMMARY_SIZE = 20


class FindingLog:
    def __init__(self) -> None:
        self._spool = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.by_code: Counter[str] = Counter()
        self.by_severity: Counter[str] = Counter()
        self.first: list[Finding] = []

    def add(self, finding: Finding) -> None:
        self.by_code[finding.code] += 1
        self.by_severity[finding.severity.value] += 1
        if len(self.first) < _SUMMARY_SIZE:
            self.first.append(finding)
        self._spool.write(json.dumps(finding.to_json(), ensure_ascii=False))
        self._spool.write("\n")

    def extend(self, findings: Iterable[Finding]) -> None:
        for finding in findings:
            self.add(finding)

    def __len__(self) -> int:
        return self.by_code.total()

    @property
    def errors(self) -> int:
        return self.by_severity[Severity.ERROR.value]

    def json_lines(self) -> Iterator[str]:
        """Each finding as one JSON object text, in the order found."""
        self._spool.flush()
        self._spool.seek(0)
        for line in self._spool:
            yield line.rstrip("\n")
        self._spool.seek(0, 2)

    def as_dicts(self) -> list[dict[str, Any]]:
        """All findings as dicts: for tests and small files only."""
        return [json.loads(line) for line in self.json_lines()]

    def close(self) -> None:
        self._spool.close()
