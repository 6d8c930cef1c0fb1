"""The ``programs-bridge`` command: ``main`` parses and maps failures to exit codes; one module per command.

``convert`` (``validate`` and ``convert``), ``plan``, ``deliver`` and ``demo``.  A new command is a new module
here with ``add_command(subparsers)``, listed in ``main.COMMAND_MODULES``.  Commands only wire: the work is in
the packages below.

May import: everything of ours; ``local`` only inside the ``demo`` command's handler, so that no other command
pays for moto and asyncssh at start-up.
"""
