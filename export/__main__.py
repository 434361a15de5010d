"""`python -m export RUN_DIR`: see `export.cli`."""

import sys

from export.cli import main

sys.exit(main(prog="python -m export"))
