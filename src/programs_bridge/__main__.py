"""``python -m programs_bridge`` runs the CLI."""

from programs_bridge.cli import main

raise SystemExit(main())
