"""Regenerate ``data/sample.parquet``: 20,000 synthetic rows, seed 0, row groups of 5,000.

Usage (from anywhere)::

    python data/make_sample.py

The output is deterministic: rerunning it rewrites a byte-identical file (for a given
pyarrow version).  See ``data/README.md`` for the columns and the planted model.
"""

from __future__ import annotations

import sys
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
REPO_ROOT = DATA_DIR.parent

ROWS = 20_000
SEED = 0
ROW_GROUP_SIZE = 5_000


def main() -> int:
    """Write ``sample.parquet`` next to this script and report its size."""
    # Work from a source checkout without installing the package.
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from sparsecross.generate import generate

    path = generate(
        DATA_DIR / "sample.parquet",
        rows=ROWS,
        seed=SEED,
        row_group_size=ROW_GROUP_SIZE,
        overwrite=True,
    )
    print(f"wrote {path} ({path.stat().st_size:,} bytes, {ROWS:,} rows, seed {SEED})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
