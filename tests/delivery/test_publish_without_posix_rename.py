"""Servers without OpenSSH's posix-rename (many commercial SFTP servers) still get the file replaced.

OpenSSH always offers the extension, so this one behaviour is checked against a small in-memory stand-in
that answers like such a server: "unsupported" for posix-rename, and a v3 rename that will not overwrite.
"""

from __future__ import annotations

import errno
from typing import cast

import pytest
from paramiko import SFTPClient

from programs_bridge.delivery.errors import RenameRefused
from programs_bridge.delivery.sftp import _publish


class V3OnlyServer:
    def __init__(self, files: dict[str, bytes], *, renames_allowed: bool = True) -> None:
        self.files = files
        self.renames_allowed = renames_allowed

    def posix_rename(self, old: str, new: str) -> None:
        raise OSError("Operation unsupported")

    def remove(self, path: str) -> None:
        if path not in self.files:
            raise OSError(errno.ENOENT, "No such file")
        del self.files[path]

    def rename(self, old: str, new: str) -> None:
        if not self.renames_allowed:
            raise OSError("Failure")
        if new in self.files:
            raise OSError("Failure")  # SFTP v3: rename never overwrites
        self.files[new] = self.files.pop(old)


@pytest.mark.parametrize("existing", [{}, {"programs.txt": b"yesterday"}])
def test_the_upload_replaces_the_final_name(existing: dict[str, bytes]) -> None:
    server = V3OnlyServer({**existing, ".programs.txt.ab.part": b"today"})
    _publish(cast(SFTPClient, server), ".programs.txt.ab.part", "programs.txt")
    assert server.files == {"programs.txt": b"today"}


def test_a_refused_rename_is_reported() -> None:
    server = V3OnlyServer({".programs.txt.ab.part": b"today"}, renames_allowed=False)
    with pytest.raises(RenameRefused):
        _publish(cast(SFTPClient, server), ".programs.txt.ab.part", "programs.txt")
