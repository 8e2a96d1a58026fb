"""``python -m verify`` from the repository root: an alias of ``python -m reffeat.verify``."""
import sys

from reffeat.verify.run import main

sys.exit(main())
