"""Illuminate's ``programs.txt``: the target format, the bottom floor every other package shares.

``layout`` holds the columns (12 or 15, their labels, which are required, which form the record key) and
``render`` turns converted rows into the tab-delimited lines Illuminate reads.  Pure functions on plain data.

May import: nothing of ours.  No I/O libraries (boto3, botocore, paramiko, powertools).
"""
