"""``python -m reffeat.run``: see ``reffeat.cli.run``."""
import sys

from .cli.run import main

if __name__ == "__main__":
    sys.exit(main())
