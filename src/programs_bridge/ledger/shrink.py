"""The shrink guard: is a full export suspiciously short of the feed's open records?  Pure, no I/O.

An SIS job that stops half-way still writes a "full" export: fewer rows, every one of them valid.  Sent, it
looks like any other night, and the exits of every student it left out never reach Illuminate.  The guard
compares the export with the open records of the ledger: when it leaves out more than ``max_missing_share``
of the open records the feed's last delivered export listed, *and* more than ``min_missing`` of them, the
verdict fires and the pipeline holds the whole export instead of delivering it.

"Left out" is counted against the last delivered export, not against every open record: the plan's
``missing`` class also holds records that earlier exports already left out (they stay open in the ledger,
because a missing record is never turned into an exit), and counting those again would hold every night
after one real drop.  So the inputs are the open records before the run, tonight's missing count, and the
missing count of the run that last committed to the feed (the ledger keeps it with that run); the guard
looks at the difference, the records this export no longer lists.

Exempt: a delta export (it lists only changes, so nothing is missing), an empty ledger (a first night), and
a feed whose configuration turns the guard off.

After a seed, the open records it learnt from Illuminate's report count as listed: the first full export is
compared with what Illuminate holds open.  That is the guard's job (an export that lists a fraction of what
Illuminate holds would leave the rest open there for good), but the verdict then names the seed, not "the
last delivered export", because no export was delivered: a district that tries a short test export after
seeding must be told why it was held.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from programs_bridge.ledger.model import ExportKind, is_seed_run

if TYPE_CHECKING:  # the plan module reads the ledger (boto3); the verdict needs only its numbers
    from programs_bridge.ledger.plan import Plan

#: The report's and the metric's name for a run the guard held.
REASON_CODE = "export_shrunken"

DEFAULT_MAX_MISSING_SHARE = 0.20
DEFAULT_MIN_MISSING = 50


@dataclass(frozen=True, slots=True)
class ShrinkRule:
    """The feed's thresholds (``[shrink_guard]`` in its configuration)."""

    enabled: bool = True
    #: Fires only above this share (strictly) of the records the last delivered export listed ...
    max_missing_share: float = DEFAULT_MAX_MISSING_SHARE
    #: ... and only when more records than this are left out (strictly), so a small feed is never held.
    min_missing: int = DEFAULT_MIN_MISSING

    def __post_init__(self) -> None:
        if not 0 < self.max_missing_share <= 1:
            raise ValueError("max_missing_share must be more than 0 and at most 1")
        if self.min_missing < 0:
            raise ValueError("min_missing must be 0 or more")


class Exemption(StrEnum):
    """Why the guard did not judge an export at all."""

    DISABLED = "disabled"
    DELTA_EXPORT = "delta_export"
    EMPTY_LEDGER = "empty_ledger"


@dataclass(frozen=True, slots=True)
class ShrinkVerdict:
    exempt: Exemption | None
    #: Open records in the ledger before this run.
    open_records: int
    #: Open records this export leaves out (the plan's ``missing``).
    missing: int
    #: Of those, left out already by the feed's last delivered export (at most ``open_records``).
    previously_missing: int
    rule: ShrinkRule
    #: The run that last committed to the feed was a seed: ``listed_before`` holds what it learnt as open.
    after_seed: bool = False

    @property
    def listed_before(self) -> int:
        """Open records the last delivered export listed."""
        return self.open_records - self.previously_missing

    @property
    def dropped(self) -> int:
        """What this export no longer lists (never below 0)."""
        return max(0, self.missing - self.previously_missing)

    @property
    def share(self) -> float:
        """``dropped / listed_before`` (0.0 when nothing was listed before)."""
        return self.dropped / self.listed_before if self.listed_before else 0.0

    @property
    def fires(self) -> bool:
        """Whether the guard holds the export: not exempt, and past both thresholds (strictly)."""
        rule = self.rule
        return self.exempt is None and self.share > rule.max_missing_share and self.dropped > rule.min_missing

    def to_json(self) -> dict[str, Any]:
        """The report's ``shrink_guard`` section: counts, thresholds and :meth:`describe`; never a record key."""
        return {
            "enabled": self.rule.enabled,
            "fires": self.fires,
            "exempt": self.exempt.value if self.exempt else None,
            "open_records": self.open_records,
            "missing": self.missing,
            "previously_missing": self.previously_missing,
            "listed_before": self.listed_before,
            "dropped": self.dropped,
            "share": round(self.share, 4),
            "max_missing_share": self.rule.max_missing_share,
            "min_missing": self.rule.min_missing,
            "compared_with": "seed" if self.after_seed else "last_export",
            "summary": self.describe(),
        }

    def describe(self) -> str:
        """One sentence with the counts and the thresholds (no student data), for reports, notices and the CLI."""
        rule = self.rule
        limits = f"more than {rule.max_missing_share:.0%} and more than {rule.min_missing:,} records"
        if self.exempt is Exemption.DISABLED:
            return "the shrink guard is turned off for this feed"
        if self.exempt is Exemption.DELTA_EXPORT:
            return "a delta export lists only changes: the shrink guard does not apply"
        if self.exempt is Exemption.EMPTY_LEDGER:
            return "the ledger holds no open record yet: the shrink guard does not apply"
        baseline = (
            "open records the ledger held after the feed was seeded from Illuminate's report"
            if self.after_seed
            else "open records the feed's last delivered export listed"
        )
        counted = (
            f"this full export leaves out {self.dropped:,} of the {self.listed_before:,} {baseline} ({self.share:.1%})"
        )
        if self.previously_missing:
            counted += f"; {self.previously_missing:,} more were already missing from the last export"
        if self.fires and self.after_seed:
            return f"{counted}, more than the guard allows ({limits}): it lists far fewer than Illuminate holds open"
        if self.fires:
            return (
                f"{counted}, more than the guard allows ({limits}): it looks like an export job that stopped half-way"
            )
        return f"{counted}: within the guard's limits (it holds an export at {limits} missing)"


def judge(
    kind: ExportKind,
    open_records: int,
    missing: int,
    previously_missing: int = 0,
    rule: ShrinkRule | None = None,
    *,
    after_seed: bool = False,
) -> ShrinkVerdict:
    """The verdict on one export.  Fires when ``dropped / listed_before > max_missing_share`` and
    ``dropped > min_missing``, where ``dropped = missing - previously_missing``; ``after_seed``: the feed's
    last committed run was a seed (it only changes what the verdict says)."""
    rule = rule or ShrinkRule()
    exempt = None
    if not rule.enabled:
        exempt = Exemption.DISABLED
    elif kind is ExportKind.DELTA:
        exempt = Exemption.DELTA_EXPORT
    elif open_records == 0:
        exempt = Exemption.EMPTY_LEDGER
    previously = max(0, min(previously_missing, open_records))
    return ShrinkVerdict(exempt, open_records, missing, previously, rule, after_seed)


def judge_plan(plan: Plan, rule: ShrinkRule | None = None) -> ShrinkVerdict:
    """The verdict on a plan: its open records, its ``missing`` count and the last committed run's."""
    return judge(
        plan.kind,
        plan.snapshot.open_flags.count(1),
        len(plan.classification.missing),
        plan.previously_missing,
        rule,
        after_seed=plan.snapshot.head_run is not None and is_seed_run(plan.snapshot.head_run),
    )
