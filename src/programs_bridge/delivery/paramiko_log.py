"""paramiko's own log, kept to reasons: no tracebacks in the command's stderr or in the Lambda's JSON logs.

When a connection dies under it (a server that stalls, sends garbage or closes mid-handshake), paramiko's
transport thread logs the reason and then the whole traceback, one ERROR record per line
(``Transport._log(ERROR, util.tb_strings())``).  Our own error already tells the district what happened;
the traceback lines only break the JSON logs and alarm whoever reads them.  The filter keeps every record
that states something ("Exception (client): Error reading SSH protocol banner") and drops the lines of a
traceback; no record keeps an attached exception.
"""

from __future__ import annotations

import logging
import re

#: The loggers paramiko's transport and SFTP client write to (``paramiko.util.get_logger`` channels).
PARAMIKO_LOGGERS = ("paramiko", "paramiko.transport", "paramiko.transport.sftp")


#: The lines of a traceback after its first: blank, indented frames, the chaining sentences, and the
#: exception lines themselves (``EOFError``, ``paramiko.ssh_exception.SSHException: Error reading ...``).
#: paramiko's reasons ("Exception (client): ...", "Socket exception: ...") never look like these.
_TRACEBACK_LINE = re.compile(
    r"\s*$|\s|During handling of the above exception|The above exception was the direct cause|[A-Za-z_][\w.]*(:|$)"
)


class ReasonsOnly(logging.Filter):
    """Drop a traceback's records, keep the rest without any attached exception.

    A traceback arrives as consecutive records from one thread, the first "Traceback (most recent call
    last)"; from there, that thread's records that look like traceback lines are dropped, and the first
    that does not ends it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._in_traceback: set[int | None] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Traceback (most recent call last)"):
            self._in_traceback.add(record.thread)
            return False
        if record.thread in self._in_traceback:
            if _TRACEBACK_LINE.match(message):
                return False
            self._in_traceback.discard(record.thread)
        if not message.strip():
            return False
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


_FILTER = ReasonsOnly()


def keep_paramiko_to_reasons() -> None:
    """Install the filter on paramiko's loggers (idempotent; a filter on a logger sees its own records)."""
    for name in PARAMIKO_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
