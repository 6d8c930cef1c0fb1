"""``python -m programs_bridge`` runs the CLI."""

from programs_bridge.cli.main import main

raise SystemExit(main())
