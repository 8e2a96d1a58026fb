"""``python -m reffeat.sweep GRID.toml``: the sweep command (``reffeat.cli.sweep``)."""

import sys

from reffeat.cli.sweep import main

sys.exit(main())
