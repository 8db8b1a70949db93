"""``python -m sparsecross`` -> :func:`sparsecross.cli.main`."""

import sys

from .cli import main

sys.exit(main())
