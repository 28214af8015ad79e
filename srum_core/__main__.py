"""Run the CLI: ``python -m srum_core --help``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
