"""programs-bridge: SIS program exports in, Illuminate ``programs.txt`` out, safely."""

__version__ = "0.1.0"
