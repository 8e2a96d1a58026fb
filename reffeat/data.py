"""``python -m reffeat.data``: see ``reffeat.cli.data``."""
import sys

from .cli.data import main

if __name__ == "__main__":
    sys.exit(main())
