"""Local stand-ins for the cloud, and the demo that runs on them; never on the Lambda's path.

``moto_server`` (AWS in server mode) and ``sftp_server`` (a pure-Python SFTP server) back the test fixtures
and ``make demo``; ``demo`` plays exports as nights through the real handler; ``synthetic`` makes the sample,
test and bench exports (realistic rows and planted damage).

May import: ``pipeline`` and everything below it.  Only ``cli`` (its ``demo`` command, lazily) imports this.
"""
