"""Deliver programs.txt to a district's Illuminate SFTP server: pinned host keys, secrets from
Secrets Manager, atomic verified uploads, bounded retries.

Importing this package is cheap: paramiko is loaded only when a delivery actually connects.

May import: ``convert``, ``programs_txt`` (it needs neither today), never ``ledger``; its command is
``cli.deliver``.
"""

import logging

from programs_bridge.delivery.budget import DEADLINE_SLACK
from programs_bridge.delivery.credentials import SftpCredentials, load_credentials
from programs_bridge.delivery.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    DeliveryConfigError,
    DeliveryError,
    HostKeyRejected,
    RemoteDirectoryMissing,
    RemoteOperationFailed,
    RemotePermissionDenied,
    RenameRefused,
    TimeBudgetExceeded,
    TransferIncomplete,
)
from programs_bridge.delivery.retry import RetryPolicy
from programs_bridge.delivery.sftp import DeliveryReceipt, SftpTarget, Timeouts, deliver

# A library logs; the application (Lambda handler, CLI) decides where to.  Without this, Python's
# last-resort handler would print retry warnings under the CLI's single error line.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "DEADLINE_SLACK",
    "AuthenticationFailed",
    "ConnectionFailed",
    "DeliveryConfigError",
    "DeliveryError",
    "DeliveryReceipt",
    "HostKeyRejected",
    "RemoteDirectoryMissing",
    "RemoteOperationFailed",
    "RemotePermissionDenied",
    "RenameRefused",
    "RetryPolicy",
    "SftpCredentials",
    "SftpTarget",
    "TimeBudgetExceeded",
    "Timeouts",
    "TransferIncomplete",
    "deliver",
    "load_credentials",
]
