"""``python -m reffeat``: a menu of the commands (``reffeat.cli.menu``)."""
import sys

from .cli.menu import main

sys.exit(main())
