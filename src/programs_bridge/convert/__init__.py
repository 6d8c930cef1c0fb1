"""From a district's SIS export to programs.txt rows, one file at a time, and what was wrong with it.

In the order a file meets them: ``reader`` (bytes to fields: encoding, delimiter, limits), ``profiles`` and
``mapping`` (which source column feeds which programs.txt field), ``headers`` (matching a header row to
them), ``codetable`` (a district's code translations), ``dates`` and ``academic_year`` (the one place dates
are read), ``id_shape`` (what an Import Student ID looks like in this file), ``rows`` (the row rules),
``dedupe`` (in-file duplicate record keys, in fixed memory), ``findings`` and ``finding_log`` (what a clerk
is told, spooled so memory stays flat) and ``engine`` (``convert_export``: the whole conversion of one file).
Pure: files in, rows and findings out; no cloud, no network.

May import: ``programs_txt``.  No boto3, botocore, paramiko or powertools.
"""
