"""Names on the server: where the file goes, and how our temporary uploads are recognised.

A temporary upload is ``.<final name>.<random>.part`` in the same directory as the final name, so the
rename that publishes it never crosses a file system, a dot-file is skipped by importers that list
``*.txt``, and a later delivery can recognise (and remove) what an interrupted one left behind
without touching anything else in the directory.
"""

from __future__ import annotations

import posixpath
import re
import secrets

TEMP_SUFFIX = ".part"


def remote_path(remote_dir: str, name: str) -> str:
    return posixpath.join(remote_dir, name)


def temp_name(final_name: str, token: str | None = None) -> str:
    """A fresh temporary name for ``final_name`` (``token`` fixes the random part, for tests)."""
    return f".{final_name}.{token or secrets.token_hex(6)}{TEMP_SUFFIX}"


def is_temp_of(name: str, final_name: str) -> bool:
    """True for names :func:`temp_name` makes for ``final_name``, and only those."""
    pattern = rf"\.{re.escape(final_name)}\.[0-9a-f]+{re.escape(TEMP_SUFFIX)}"
    return re.fullmatch(pattern, name) is not None
