"""A report of Illuminate's own program records, dropped under ``illuminate/<feed>/``.

Converted as ``programs-bridge ledger seed`` converts it (``records_only``: the rows feed the ledger alone,
so names and birth date may be missing), into the feed's output layout so keys and fields compare with what
the nightly runs send.  The shape is detected from the header (``illuminate-report``, or a past programs.txt
read as ``illuminate``), whatever the feed's profile says (it describes the SIS export, and even a feed whose
exports are programs.txt files may drop a report in the other shape), unless the feed's configuration has a
mapping called or extending one of those two: the district's own description of its report.
The feed's code table is not applied: Illuminate may hold records under codes it has since retired.

- A feed whose ledger was never seeded nor committed to (``store.head`` is None) is **seeded** from it
  (``ledger.seed``), as a run ``seed_run_id(upload time, sha256)``: its first export is then planned against
  what Illuminate holds.  A retry of a seed cut short finishes it (the head is then the seed's own run); a
  report too big to seed in one invocation stops between write requests and continues in the next
  (``RunContinues``), as a long first commit does.
- Any other feed is **reconciled** against its ledger (``ledger.reconcile``): duplicates in Illuminate,
  exits that never landed, records the import dropped, records entered by hand.  Exit rows that mend the
  exits that never landed go to ``reports/<feed>/<run-id>.fix.programs.txt``, for a person to check and
  upload: the bridge never sends them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from programs_bridge.convert.engine import Conversion, ConvertOptions, Status, convert_export, converted_rows
from programs_bridge.convert.profiles import ILLUMINATE_PROFILES
from programs_bridge.ledger import reconcile as core
from programs_bridge.ledger.model import Row, unfinished_change
from programs_bridge.ledger.seed import seed, seed_run_id
from programs_bridge.ledger.store import RunRecord
from programs_bridge.pipeline.config import FeedConfig
from programs_bridge.pipeline.drops import DropKind, Ending, run_drop
from programs_bridge.pipeline.observe import emit_continued, logger
from programs_bridge.pipeline.run import Outcome, Run, RunContinues, Services, Source, _load_config, _write_programs


def run_illuminate(source: Source, services: Services) -> Outcome:
    return run_drop(source, services, ILLUMINATE)


def convert_options(config: FeedConfig, source: Source) -> ConvertOptions:
    """The feed's output format and limits; an Illuminate shape of the feed's configuration, else detection."""
    mapping = config.mapping
    if mapping is not None and not ({mapping.name, mapping.extends} & ILLUMINATE_PROFILES):
        mapping = None
    options = config.convert_options(None, today=source.last_modified.date())
    return replace(
        options, mapping=mapping, delimiter=mapping.delimiter if mapping else None,
        encoding=mapping.encoding if mapping else None, records_only=True, keep_source_lines=True,
    )  # fmt: skip


def _work(run: Run) -> Ending:
    services, source = run.services, run.source
    config = _load_config(run.feed, services.storage)  # a ConfigError fails the run as ``config``
    with run.step("fetch"):
        fetched = services.storage.fetch(source.key, source.version_id, run.workdir / "report")
    run.report["source"].update(sha256=fetched.sha256, size=fetched.size)
    options = convert_options(config, source)
    with run.step("convert"):
        conversion = convert_export(fetched.path, run.workdir / "converted.txt", options)
    run.converted(conversion)
    logger.info(
        "converted",
        extra={"stage": "convert", "status": conversion.status.value, "rows_read": conversion.rows_read,
               "rows_rejected": conversion.rows_rejected, "profile": conversion.profile},
    )  # fmt: skip
    if conversion.status is Status.REJECTED:
        reason = f"rejected, the ledger is unchanged: {conversion.reason or 'not a report of program records'}"
        return Ending("rejected", reason, "rejected", {"FilesRejected": 1}, notify=True)
    run_id = seed_run_id(source.last_modified, fetched.sha256)
    head = services.ledger.head(run.feed)
    if head is None or head == run_id:
        return _seed(run, conversion, options, run_id, fetched.sha256)
    unfinished = unfinished_change(head, partial(services.ledger.run_status, run.feed))
    if unfinished is not None:  # another seed (or an undo) cut short: neither seed over it nor compare with it
        reason = (
            f"not read: {unfinished} holds feed {run.feed!r} but did not finish, so the ledger holds only part of "
            "what it should; run it again to its end, then drop this report again"
        )
        return Ending("rejected", reason, "rejected", {"FilesRejected": 1}, notify=True)
    return _reconcile(run, conversion, options)


def _seed(run: Run, conversion: Conversion, options: ConvertOptions, run_id: str, sha256: str) -> Ending:
    source = run.source
    record = RunRecord(run_id, source.key, source.version_id or source.version.etag, sha256, run.entry.report_key, {})
    with run.step("seed"):
        result = seed(run.services.ledger, converted_rows(conversion), options.output.layout, feed=run.feed,
                      run=record, stop=run.services.budget.exhausted)  # fmt: skip
    if not result.complete:  # a report too big for one invocation: the next one reads on from the ledger
        written = result.usage.items
        if not written:  # no headway (the conversion alone took the time): continuing would never end
            raise RuntimeError("the seed could not write a record before the invocation's time ran out")
        emit_continued(run.feed)
        logger.info("seed continues in a new invocation", extra={"stage": "seed", "records_written": written})
        raise RunContinues(source, f"{written:,} ledger record(s) seeded in this invocation")
    section = result.to_json()
    run.report["seed"] = section
    c = section["counts"]
    logger.info("feed seeded", extra={"stage": "seed", "counts": c, "already_seeded": result.already_seeded})
    if result.already_seeded:
        reason = f"seeded from this report before (run {run_id}): nothing written"
        return Ending("seeded", reason, metrics={"FeedsSeeded": 0})
    reason = (
        f"feed {run.feed!r} seeded from Illuminate's records as run {run_id}: {c['records_read']:,} read, "
        f"{c['new']:,} new, {c['updated']:,} corrected, {c['unchanged']:,} already known, {c['conflicts']:,} kept "
        "as the bridge sent them later. Its exports are now planned against them: drop again an export that "
        "waited for the seed (needs_seed)"
    )
    if conversion.rows_rejected:
        reason += f"; {conversion.rows_rejected:,} row(s) of the report rejected (listed): not in the ledger"
    return Ending("seeded", reason, metrics={"FeedsSeeded": 1}, notify=True)


def _reconcile(run: Run, conversion: Conversion, options: ConvertOptions) -> Ending:
    services, feed, layout = run.services, run.feed, options.output.layout
    spool = run.workdir / "exits.jsonl"
    with run.step("reconcile"):
        snapshot, _ = services.ledger.read_snapshot(feed)
        with spool.open("w", encoding="utf-8") as out:

            def keep(row: Row) -> None:  # an exit that never landed, for the fix file
                out.write(json.dumps(row) + "\n")

            result = core.reconcile(converted_rows(conversion), layout, snapshot, on_exit_not_landed=keep)
    run.report["reconcile"] = result.to_json()
    reason = f"compared with the ledger: {result.findings:,} finding(s) to act on"
    if result.counts["exits_fixable"] and core.can_fix(layout):
        fix_key = f"reports/{feed}/{run.entry.run_id}.fix.programs.txt"
        fixed = core.FixCounts()
        with run.step("fix"):
            end_dates = partial(services.ledger.record_end_dates, feed)
            rows = core.fix_rows(_spooled(spool), layout, end_dates, fixed)
            _write_programs(run.workdir / "fix.txt", options.output, rows)
            if fixed.rows:  # a file of a header alone would only send a clerk looking for nothing
                services.storage.put_file(fix_key, run.workdir / "fix.txt", "text/plain; charset=utf-8")
        run.report["fix"] = {"key": fix_key if fixed.rows else None, **fixed.to_json()}
        reason += (
            f"; {fixed.rows:,} exit row(s) that never landed are in {fix_key}, to check and upload by hand"
            if fixed.rows
            else "; no exit row could be written for the exits that never landed"
        ) + fixed.left_out()
    if result.matched_none:
        reason += (
            "; not one of the report's records is in the ledger: is this the feed's report, in the feed's layout "
            "(its config's layout or columns), so that keys compare equal?"
        )
    counts = result.counts
    logger.info("reconciled", extra={"stage": "reconcile", "counts": dict(counts)})
    notify = result.findings > 0 or result.matched_none
    return Ending("reconciled", reason, metrics={"ReconcileFindings": result.findings}, notify=notify)


def _spooled(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8") as lines:
        for text in lines:
            line, fields = json.loads(text)
            yield int(line), list(fields)


def _summary(head: dict[str, Any]) -> list[str]:
    lines = [f"- report rows: {head.get('rows_read', 0):,} read, {head.get('rows_rejected', 0):,} rejected"]
    seeded = head.get("seed")
    if isinstance(seeded, dict):
        c = seeded.get("counts", {})
        lines.append(
            f"- seed {seeded.get('run_id', '')}: {c.get('new', 0):,} new, {c.get('updated', 0):,} corrected, "
            f"{c.get('unchanged', 0):,} already known, {c.get('conflicts', 0):,} conflicts"
        )
    reconciled = head.get("reconcile")
    if isinstance(reconciled, dict):
        c = reconciled.get("counts", {})
        lines.append("- reconcile: " + ", ".join(f"{n:,} {name.replace('_', ' ')}" for name, n in c.items()))
    fix = head.get("fix")
    if isinstance(fix, dict) and fix.get("key"):  # none written: the reason, shown above, says why
        lines.append(f"- fix file (never sent): `{fix.get('key', '')}`, {fix.get('rows', 0):,} exit row(s)")
    return lines


ILLUMINATE = DropKind("illuminate", "Illuminate report", _work, _summary)
