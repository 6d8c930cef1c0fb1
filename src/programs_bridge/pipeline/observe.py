"""The trail a run leaves for people: structured logs, per-feed CloudWatch metrics, and SNS notices.

Logs and metrics carry counts, stages, run ids and feed names only: never a name, birth date or student
ID (those stay in the district's own bucket, in the report).  Metrics are EMF lines on stdout, one batch per
run with the ``feed`` dimension, so one invocation that drains several feeds still attributes every number.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

SERVICE = "programs-bridge"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "ProgramsBridge")

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)

#: The libraries' loggers whose records must come out as this logger's JSON lines in Lambda: our own
#: modules (the ledger, delivery) and paramiko (warnings and errors only; its tracebacks are filtered out
#: by ``delivery.paramiko_log``).
_ROUTED = {"programs_bridge": None, "paramiko": "WARNING"}


def route_library_logs() -> None:
    """In Lambda, write our modules' and paramiko's records through the Powertools handler, as JSON with the
    run's keys, instead of the runtime's plain-text root handler.

    Powertools' ``copy_config_to_registered_loggers`` also stops those loggers propagating to the root, so
    this runs only inside Lambda (``AWS_LAMBDA_FUNCTION_NAME`` is set by the runtime), never in the CLI or
    the tests, whose handlers sit on the root logger.
    """
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return
    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

    from programs_bridge.delivery.paramiko_log import keep_paramiko_to_reasons

    keep_paramiko_to_reasons()  # registers paramiko's loggers before it is imported, and filters them
    for name, level in _ROUTED.items():
        logging.getLogger(name)
        copy_config_to_registered_loggers(source_logger=logger, include={name}, log_level=level)


#: Run-report count -> metric name (the dashboard and alarms in template.yaml use these names).
COUNT_METRICS = {
    "rows_read": "RowsRead",
    "rows_rejected": "RowsRejected",
    "rows_sent": "RowsSent",
    "exits": "Exits",
    "duplicate_risks": "DuplicateRisks",
    "held": "Held",
    "missing": "Missing",
}
#: Run status -> the per-file metric it counts towards.
STATUS_METRICS = {
    "delivered": "FilesDelivered",
    "rejected": "FilesRejected",
    "failed": "RunFailures",
    "repeat": "FilesRepeated",
    "superseded": "FilesSuperseded",
    # Only the shrink guard holds a whole export (``ledger/shrink.py``): the name says what to look for.
    "held": "ShrunkenExportsHeld",
    "needs_seed": "ExportsAwaitingSeed",
}
#: Failure kind -> the metric it counts towards instead of ``RunFailures`` (each kind raises its own alarm).
#: Every other kind (``aws``, ``timeout``, ``internal``, ...) counts as a ``RunFailures``.
FAILURE_METRICS = {
    "config": "ConfigErrors",
    "delivery": "DeliveryFailures",
}
#: A run that stopped at a safe point because the invocation's time was running out, and asked the queue
#: to bring it back at once (a large first commit spans invocations).  Not a failure: no alarm.
CONTINUED_METRIC = "RunsContinued"
#: A file dropped under incoming/, resolutions/ or illuminate/ but in no feed's folder (``Ignored.misplaced``).
MISPLACED_METRIC = "FilesMisplaced"
DELIVERY_SECONDS_METRIC = "DeliverySeconds"
#: What the drops beside the exports count (``pipeline/drops.py``): a clerk's resolutions recorded and lines
#: refused, from ``resolutions/<feed>/``; feeds seeded and reconcile findings, from ``illuminate/<feed>/``.
DROP_METRICS: frozenset[str] = frozenset(
    {"ResolutionsApplied", "ResolutionLinesRefused", "FeedsSeeded", "ReconcileFindings"}
)
#: Every metric name the pipeline emits; the template's dashboard must show each (tests/test_template.py).
METRIC_NAMES: frozenset[str] = frozenset(
    {*COUNT_METRICS.values(), *STATUS_METRICS.values(), *FAILURE_METRICS.values(), CONTINUED_METRIC,
     DELIVERY_SECONDS_METRIC, *DROP_METRICS}
)  # fmt: skip


def emit_run_metrics(
    feed: str,
    status: str,
    counts: Mapping[str, int],
    *,
    delivery_seconds: float | None = None,
    failure: str | None = None,
) -> None:
    """One EMF batch for one run of one feed."""
    metrics = _feed_metrics(feed)
    for count, name in COUNT_METRICS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=counts.get(count, 0))
    # A failure counts once, under its own kind, so each kind raises exactly one alarm.
    if failure in FAILURE_METRICS:
        metrics.add_metric(name=FAILURE_METRICS[failure], unit=MetricUnit.Count, value=1)
    elif status in STATUS_METRICS:
        metrics.add_metric(name=STATUS_METRICS[status], unit=MetricUnit.Count, value=1)
    if delivery_seconds is not None:
        metrics.add_metric(name=DELIVERY_SECONDS_METRIC, unit=MetricUnit.Seconds, value=round(delivery_seconds, 3))
    metrics.flush_metrics()


class Notifier:
    """SNS notices for what a person must look at: rejected or held files, a feed to seed, failures, duplicate
    risks."""

    def __init__(self, topic_arn: str | None, client: SNSClient | None = None) -> None:
        self.topic_arn = topic_arn
        self._client = client

    def notify(self, subject: str, message: str) -> None:
        if not self.topic_arn:
            return
        client = self._client or boto3.client("sns")
        client.publish(TopicArn=self.topic_arn, Subject=subject[:100], Message=message)


def emit_drop_metrics(feed: str, values: Mapping[str, int]) -> None:
    """One EMF batch for a drop beside the exports (resolutions, a report of Illuminate's records): each of
    ``values`` is one of ``DROP_METRICS`` or ``STATUS_METRICS``' (a rejected drop counts as ``FilesRejected``)."""
    known = DROP_METRICS | set(STATUS_METRICS.values())
    metrics = _feed_metrics(feed)
    for name, value in values.items():
        assert name in known, name
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    metrics.flush_metrics()


def emit_misplaced() -> None:
    """A file dropped outside any feed's folder: nobody reads it (no feed dimension: it names none)."""
    metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    metrics.add_metric(name=MISPLACED_METRIC, unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()


def emit_continued(feed: str) -> None:
    """A run stopped at a safe point to continue in a new invocation (not a failure: no alarm)."""
    metrics = _feed_metrics(feed)
    metrics.add_metric(name=CONTINUED_METRIC, unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()


def _feed_metrics(feed: str) -> EphemeralMetrics:
    """A batch of metrics with the ``feed`` dimension (the dashboard's and alarms' only dimension)."""
    metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    metrics.add_dimension(name="feed", value=feed)
    return metrics
