"""``programs-bridge deliver``: upload a file by hand, to test connectivity, credentials and pinning.

It runs exactly the code the pipeline runs (same pinning, same atomic upload, same retries), with the
credentials taken from local files and environment variables instead of Secrets Manager.  Passwords and
passphrases come from environment variables, never the command line, where ``ps`` and shell history
would keep them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from programs_bridge.cli.main import UsageError
from programs_bridge.delivery.credentials import parse_credentials
from programs_bridge.delivery.errors import DeliveryConfigError, DeliveryError
from programs_bridge.delivery.retry import RetryPolicy
from programs_bridge.delivery.sftp import SftpTarget, deliver

#: Exit code when the delivery itself failed (host key, authentication, network, server refusal).
EXIT_DELIVERY_FAILED = 3


def add_command(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "deliver",
        help="upload a file to an SFTP server whose host key is pinned (connectivity check)",
        description=(
            "Upload FILE as the feed's programs.txt: the server's host key must match --known-hosts, the "
            "upload goes to a temporary name, is size-checked, then renamed.  Exit 0 delivered, 3 delivery "
            "failed, 64 usage error."
        ),
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="the file to upload")
    parser.add_argument("--host", required=True, help="SFTP server host name or address")
    parser.add_argument("--port", type=int, default=22, help="SFTP server port (default 22)")
    parser.add_argument("--user", required=True, help="user name on the SFTP server")
    parser.add_argument("--key-file", type=Path, help="private key (OpenSSH or PEM; ed25519, ECDSA or RSA)")
    parser.add_argument(
        "--known-hosts", type=Path, required=True, help="file with the server's pinned known_hosts line(s)"
    )
    parser.add_argument("--remote-dir", default=".", help="directory on the server (default: the login directory)")
    parser.add_argument("--remote-name", default="programs.txt", help="file name on the server (default programs.txt)")
    parser.add_argument("--password-env", metavar="VAR", help="environment variable holding the password")
    parser.add_argument(
        "--passphrase-env", metavar="VAR", help="environment variable holding the key file's passphrase"
    )
    parser.add_argument(
        "--no-temp-rename",
        action="store_true",
        help="write straight to the final name (only for servers that refuse renames)",
    )
    parser.add_argument("--attempts", type=int, default=3, help="connection attempts for transient failures")
    parser.set_defaults(handler=handle)


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from None


def _env(name: str | None, what: str) -> str | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if value is None:
        raise UsageError(f"--{what}-env names {name!r}, which is not set")
    return value


def handle(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise UsageError(f"no such file: {str(args.file)!r}")
    if args.key_file is None and args.password_env is None:
        raise UsageError("give --key-file or --password-env (or both)")
    if args.attempts < 1:
        raise UsageError("--attempts must be at least 1")
    target = SftpTarget(
        host=args.host,
        port=args.port,
        known_hosts=tuple(_read(args.known_hosts, "known_hosts file").splitlines()),
        remote_dir=args.remote_dir,
        remote_name=args.remote_name,
        use_temp_rename=not args.no_temp_rename,
    )
    secret = {
        "username": args.user,
        "private_key": _read(args.key_file, "key file") if args.key_file else None,
        "passphrase": _env(args.passphrase_env, "passphrase"),
        "password": _env(args.password_env, "password"),
    }
    try:
        credentials = parse_credentials({name: value for name, value in secret.items() if value is not None})
        receipt = deliver(args.file, target, credentials, retry=RetryPolicy(attempts=args.attempts))
    except DeliveryConfigError as exc:
        raise UsageError(str(exc)) from None
    except DeliveryError as exc:
        print(
            f"programs-bridge: delivery failed [{exc.code}] after {exc.attempts} attempt(s): {exc}",
            file=sys.stderr,
        )
        return EXIT_DELIVERY_FAILED
    print(
        f"delivered {receipt.size} bytes to [{args.host}]:{args.port} as {receipt.remote_path} "
        f"({receipt.attempts} attempt(s), {receipt.stale_temps_removed} stale temporary file(s) removed)"
    )
    return 0
