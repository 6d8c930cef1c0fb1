"""``programs-bridge demo``: the command's options here, the demo itself loaded only when it runs.

The demo needs boto3, moto and asyncssh; every other command would pay for them at start-up if the parser
imported ``local.demo``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from programs_bridge.convert.profiles import PROFILES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("items", nargs="*", metavar="ITEM",
                        help="in order: an export (the next night), illuminate:PATH (Illuminate's own records) or "
                        "resolutions:PATH (decisions about held rows, id,decision,note)")  # fmt: skip
    # One source of the feed's shape: a config names its own profile or [mapping], which --profile or
    # --mapping beside it would silently lose to.
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--profile", choices=sorted(PROFILES), help="built-in profile for your exports")
    source.add_argument("--mapping", type=Path, help="a TOML mapping for your exports")
    source.add_argument(
        "--config",
        type=Path,
        help="your feed configuration (config/<feed>.toml), profile or [mapping] included; its [sftp] table is "
        "replaced",
    )
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="where to write NN-programs.txt etc.")


def _demo(args: argparse.Namespace) -> int:
    from programs_bridge.local.demo import run

    return run(args)


def add_command(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run the whole pipeline locally (moto + an embedded SFTP server), item by item",
        description="Drop each item into a local stack (an export as the next night, illuminate:PATH, "
        "resolutions:PATH) and run the real Lambda handler; writes DIR/NN-report.json, DIR/NN-programs.txt and "
        "DIR/NN-fix.txt; exit 1 if any run failed.",
    )
    add_arguments(demo)
    demo.set_defaults(handler=_demo)
