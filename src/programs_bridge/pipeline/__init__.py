"""The S3-triggered pipeline: an export dropped under ``incoming/<feed>/`` becomes a delivered programs.txt.

Modules, one concept each: ``events`` (what S3 said), ``config`` (a feed's settings), ``storage`` (the bucket),
``lease`` (one run per feed at a time), ``run`` (the stages of one file), ``run_report`` (what the district
reads), ``observe`` (logs, metrics, notifications), ``handler`` (the Lambda entry point that wires them).
"""
