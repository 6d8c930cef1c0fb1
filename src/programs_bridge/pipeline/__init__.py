"""The S3-triggered pipeline: an export dropped under ``incoming/<feed>/`` becomes a delivered programs.txt.

Modules, one concept each: ``events`` (what S3 said), ``config`` (a feed's settings), ``storage`` (the bucket),
``lease`` (one run per feed at a time), ``journal`` (each export's stage, for exactly-once runs), ``budget``
(the invocation's time), ``run`` (the stages of one file), ``observe`` (logs, metrics, notifications),
``wiring`` (the AWS clients and adapters) and ``handler`` (the Lambda entry point).

May import: ``report``, ``ledger``, ``delivery``, ``convert``, ``programs_txt``; never ``local`` or ``cli``.
"""
