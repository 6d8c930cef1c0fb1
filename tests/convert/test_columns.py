"""The column path (``convert/columns.py``) agrees with the per-row reference on every input.

A property test without a library: each case is drawn from a seeded ``random.Random``, so a failure names
the seed that reproduces it.  A case is a synthetic export of one profile with random damage on top of the
generator's own (hidden characters, spaces at the ends, tabs and line breaks in values, ragged rows, case
variants, zero-padded sites, scientific IDs, bad and implausible dates, long names, repeated rows ...),
converted twice, with the column path on and off, under batch sizes that put damage at every place in a
batch.  Output bytes, the findings in order, the report and the source lines must be identical.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from programs_bridge.convert import engine
from programs_bridge.convert.codetable import parse_code_table
from programs_bridge.convert.engine import Conversion, ConvertOptions, convert_export
from programs_bridge.convert.mapping import Mapping, load_mapping
from programs_bridge.convert.profiles import PROFILES as MAPPINGS
from programs_bridge.convert.reader import Batch
from programs_bridge.local.synthetic import PROFILES, records
from programs_bridge.report.conversion import write_report

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
TODAY = date(2026, 9, 1)  # the synthetic data's reference day

#: Values that are each a reason for the reference to say something, or that only look like one.
NASTY = (
    "", " ", "  padded  ", "\u00a0123", "123\u00a0", "12\x85", "\x85", "ab\u200bc", "\ufeff1234567", "0012", "012",
    "00", "0", "1.23457E+11", "1E+5", "+", "a b", "ABC", "abc", "Ab", "\u0663\u0664", "\u00b2", "x\ty", "x\ny",
    "x\r", "99991231", "1/1/1900", "01-JAN-1900", "2/30/2025", "41856", "13/45/2024", "TBD", "2025", "2025-26",
    "SY2025-2026", "2024-2025", "2024-2026", "x" * 40, "y" * 210, "Jos\u00e9", "\u03a9mega", "\x01", "NULL",
    "12/31/2099", "01/01/1900", "1/5/2024", "2024-01-05T00:00:00", "05-JAN-24", "20240105", "1/5/24", "D", "A",
    "504", "GATE", "101", "127", "6003737", "6003774", "9999999", "Special Ed", "Do\x1b[1me", "12\x7f", "Jo\u2028Ann",
    "9" * 31,
)  # fmt: skip


def _damage(rows: list[list[str]], rng: random.Random, share: float) -> list[list[str]]:
    """The rows with extra damage on a ``share`` of them, and some rows repeated or changed a little."""
    out: list[list[str]] = []
    for row in rows:
        row = list(row)
        if rng.random() < share:
            for _ in range(rng.choice((1, 1, 2, 3))):
                if not row:
                    row = [""]
                at = rng.randrange(len(row))
                kind = rng.random()
                if kind < 0.45:
                    row[at] = rng.choice(NASTY)
                elif kind < 0.55:
                    row[at] = f" {row[at]} " if rng.random() < 0.5 else row[at].upper()
                elif kind < 0.65:
                    row[at] = row[at].lstrip("0") if rng.random() < 0.5 else "0" + row[at]
                elif kind < 0.72:
                    del row[at]
                elif kind < 0.78:
                    row.append(rng.choice(("", "extra")))
                elif kind < 0.88 and any(out[-8:]):
                    row = list(rng.choice([earlier for earlier in out[-8:] if earlier]))  # merged, or a conflict
                    if rng.random() < 0.5:
                        row[rng.randrange(len(row))] = rng.choice(NASTY)
                else:
                    row[at] = row[at].lower() if rng.random() < 0.5 else row[at] + rng.choice(("\u200b", "\u00a0"))
        out.append(row or [""])
        if rng.random() < share / 4:
            out.append([])  # a blank line
    return out


def _export(path: Path, profile: str, rows: int, seed: int, share: float) -> None:
    shape = PROFILES[profile]
    rng = random.Random(f"columns:{profile}:{seed}")
    data = [record.fields for record in records(profile, rows, seed=seed, damage=share / 2)]
    text = io.StringIO(newline="")
    writer = csv.writer(text, delimiter=shape.delimiter, lineterminator="\n")
    if shape.header_row:
        writer.writerow(shape.header)
    writer.writerows(_damage(data, rng, share))
    lines = text.getvalue().encode("utf-8").split(b"\n")
    for at in range(1, len(lines) - 1):  # bytes that are not UTF-8: rows the reader leaves out and reports
        if rng.random() < share / 10 or (at == len(lines) - 2 and rng.random() < share * 2):
            lines[at] = lines[at][:5] + b"\xff" + lines[at][5:]
    path.write_bytes(b"\n".join(lines))


CODES = parse_code_table(
    "Code Key,Description,System Key\n144,Special Education,\n101,504 Plan,504_plan\n5040,Section 504,\n"
    "181,Free Meal,\n306,Language,\n504,Plan,\nGATE,Gifted,\n"
)

#: A case: profile, the options beyond the defaults.
Case = tuple[str, Callable[[], dict[str, object]]]
CASES: dict[str, Case] = {
    "powerschool": ("powerschool", dict),
    "powerschool, code table": ("powerschool", lambda: {"code_table": CODES}),
    "powerschool, records only": ("powerschool", lambda: {"records_only": True}),
    "aeries": ("aeries", dict),
    "infinite-campus": ("infinite-campus", dict),
    "illuminate": ("illuminate", dict),
    "synergy": ("synergy", dict),
    "illuminate-report": ("illuminate-report", lambda: {"records_only": True}),
    "calpads-sprg": ("calpads-sprg", lambda: {"mapping": load_mapping(SAMPLES / "calpads-sprg-codes.toml", MAPPINGS)}),
}


def _convert(source: Path, out: Path, options: ConvertOptions) -> tuple[bytes, str, bytes]:
    """programs.txt, the report and the source lines of one conversion (every output removed after)."""
    conversion: Conversion = convert_export(source, out, options)
    report = io.StringIO()
    write_report(conversion, report)
    written = out.read_bytes() if out.exists() else b""
    lines = conversion.source_lines.read_bytes() if conversion.source_lines is not None else b""
    out.unlink(missing_ok=True)
    if conversion.source_lines is not None:
        conversion.source_lines.unlink()
    conversion.findings.close()
    return written, report.getvalue(), lines


def _both(source: Path, out: Path, options: dict[str, object]) -> tuple[tuple[bytes, str, bytes], ...]:
    base = ConvertOptions(today=TODAY, max_reject_share=1.0, keep_source_lines=True, **options)  # type: ignore[arg-type]
    column = _convert(source, out, base)
    reference = _convert(source, out, ConvertOptions(**{**base.__dict__, "column_path": False}))
    return column, reference


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("batch", [3, 37, 512])
def test_the_column_path_agrees_with_the_per_row_reference_on_random_damage(
    case: str, batch: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile, options = CASES[case]
    monkeypatch.setattr(engine, "_BATCH", batch)
    for seed in range(4):
        source = tmp_path / f"{profile}-{seed}.txt"
        _export(source, profile, 400, seed, share=(0.02, 0.1, 0.3, 0.0)[seed])
        column, reference = _both(source, tmp_path / "programs.txt", options())
        assert column[0] == reference[0], f"{case}, seed {seed}: programs.txt differs"
        assert column[1] == reference[1], f"{case}, seed {seed}: the report differs"
        assert column[2] == reference[2], f"{case}, seed {seed}: the source lines differ"


def test_the_column_path_claims_the_clean_rows(tmp_path: Path) -> None:
    """Not a fallback in disguise: on a clean export every row after the first batch is claimed."""
    source = tmp_path / "clean.csv"
    _export(source, "powerschool", 3000, 1, share=0.0)
    claimed = []
    original = engine.ColumnConverter.convert

    def counting(self: engine.ColumnConverter, batch: Batch) -> engine.Converted:
        converted = original(self, batch)
        claimed.append(len(batch.records) - len(converted.slow))
        return converted

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine.ColumnConverter, "convert", counting)
        convert_export(source, None, ConvertOptions(today=TODAY, mapping=_mapping("powerschool")))
    assert sum(claimed[1:]) >= 0.99 * (3000 - 512)  # the first batch fills the leading-zeros tally's examples


def _mapping(name: str) -> Mapping:
    return MAPPINGS[name]


def test_an_id_padded_with_zeros_first_seen_in_a_claimed_batch_still_counts(tmp_path: Path) -> None:
    """The leading-zeros tally's 'padded' flag comes from the column path when the first zero-padded ID
    arrives long after its width's example lines were collected."""
    shape = PROFILES["powerschool"]
    rows = [record.fields for record in records("powerschool", 1500, seed=3)]
    for n, row in enumerate(rows):
        row[shape.student_id] = f"{1_000_000 + n * 7:07d}"
    rows[1100][shape.student_id] = "0456789"
    rows[1300][shape.student_id] = "456780"  # six digits: lost its zero
    source = tmp_path / "late-zeros.csv"
    with source.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(shape.header)
        writer.writerows(rows)
    column, reference = _both(source, tmp_path / "programs.txt", {})
    assert column == reference
    assert '"leading_zeros_stripped"' in column[1]


@pytest.mark.parametrize("batch", [37, 512])
def test_damage_part_way_keeps_the_findings_of_the_rows_before_it(
    batch: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stray quote refuses the file at its line; what the rows read before it said is in the report, read
    a batch ahead or not."""
    monkeypatch.setattr(engine, "_BATCH", batch)
    source = tmp_path / "broken.csv"
    _export(source, "powerschool", 400, 1, share=0.1)
    lines = source.read_bytes().split(b"\n")
    lines[301] = b'"a stray quote"x,' + lines[301]
    source.write_bytes(b"\n".join(lines))
    column, reference = _both(source, tmp_path / "programs.txt", {})
    assert column == reference
    assert '"status": "rejected"' in column[1] and '"excel_serial_date"' in column[1]
