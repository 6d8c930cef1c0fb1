"""The documents a district reads: the converter's report and the pipeline's run report.

``conversion`` renders one conversion (status, counts, findings streamed from the finding log) as JSON and
a short text summary; ``run`` adds what the ledger planned (exits, holds, duplicate risks) and how the run
ended.  Pure rendering of results made elsewhere, so it sits above the packages whose results it renders.

May import: ``ledger`` (its plan's types), ``delivery``, ``convert``, ``programs_txt``.  No boto3, botocore or paramiko.
"""
