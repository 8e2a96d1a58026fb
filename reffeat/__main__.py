"""``python -m reffeat`` is ``python -m reffeat.run``."""
import sys

from .run import main

sys.exit(main())
