"""`python -m export RUN_DIR`: see `export.cli`."""

import sys

from export.cli import main
from pipelines import cli

cli.handle_signals()
sys.exit(main(prog="python -m export"))
