"""Looking for student data in log records: what our code put into a record, matched as whole tokens.

Only the parts of a record that code writes are searched: the message (with its arguments), the ``extra``
fields, and the exception or stack text.  The attributes ``logging`` fills in itself (``msecs``,
``created``, ``thread``, ``process``, ``lineno``, ...) are left out: a 3-digit student ID matched a
millisecond value a few times per run, failing the suite when nothing had leaked.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Iterable

#: Attributes every LogRecord has before any ``extra`` is merged in (``message`` and ``asctime`` are set
#: by formatters; ``taskName`` exists from Python 3.12).
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def written_text(record: logging.LogRecord) -> str:
    """The text our code put into ``record``: message, extra fields, exception and stack."""
    extras = {name: value for name, value in record.__dict__.items() if name not in _STANDARD}
    parts = [record.getMessage()]
    if extras:
        parts.append(json.dumps(extras, default=str, ensure_ascii=False))
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(record.exc_info[1])))
    elif record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


class LeakWatch(logging.Handler):
    """Keeps the written text of every record it sees."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(written_text(record))


def leaked(texts: Iterable[str], values: Iterable[str]) -> list[str]:
    """The ``values`` that occur in ``texts`` as whole tokens: not inside a longer word, path or number
    (``24443`` is not in ``1.24443`` or ``124443``), but still at the end of a sentence (``ID 24443.``)."""
    text = "\n".join(texts)
    return sorted(
        value for value in set(values) if re.search(rf"(?<![\w/-])(?<!\d\.){re.escape(value)}(?![\w/-])(?!\.\d)", text)
    )
