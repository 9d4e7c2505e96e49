"""`python -m rttui`: the same entry point as the `rttui` script (used to start detached runners)."""

from rttui.cli import main

main()
