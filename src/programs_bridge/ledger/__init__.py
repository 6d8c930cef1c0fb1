"""The record ledger: a memory, in DynamoDB, of every program record already sent to Illuminate.

Illuminate closes a record only when an exit row matches its four key fields exactly; otherwise it opens a
second record.  The ledger lets a run tell a real exit from a would-be duplicate *before* the file leaves.

Modules, one concept each: ``model`` (keys, row facts, decision classes), ``snapshot`` (the compact in-memory
copy of a feed's records), ``classify`` (the pure classification), ``store`` (the DynamoDB adapter), ``plan``
(read + classify + policy, writes nothing), ``shrink`` (the verdict on a full export that leaves out far more
open records than the last one), ``commit`` (record what was delivered, idempotently), ``seed`` (load
what Illuminate already holds, from its own report), ``reconcile`` (compare that report with the ledger)
and ``resolutions`` (a clerk's decisions about held rows).

May import: ``convert``, ``programs_txt``, never ``delivery``.  Only ``store`` talks to DynamoDB (boto3, botocore).
"""
