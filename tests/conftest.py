"""Shared fixtures of the sparsecross test suite."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # so that `tests.reference` imports from every test module
    sys.path.insert(0, str(REPO_ROOT))

#: Real data sets live next to the repository (``../shared/data``), not inside it.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _no_debug_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """SPARSECROSS_DEBUG=1 in the environment would turn the CLI's error lines into tracebacks."""
    monkeypatch.delenv("SPARSECROSS_DEBUG", raising=False)


@pytest.fixture
def one_group_per_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    """Data-parallel rounds of one row group per lane (``LANE_ROWS_TARGET`` 1), what the tests
    of the round mechanics and their plain-Python references use on small files; the default
    grouping (whole row groups, as near 262,144 rows per lane as they come) has tests of its
    own."""
    from sparsecross import _defaults

    monkeypatch.setattr(_defaults, "LANE_ROWS_TARGET", 1)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the folder holding ``pyproject.toml``)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def sample_path() -> Path:
    """data/sample.parquet: 20,000 synthetic rows in 4 row groups of 5,000."""
    return REPO_ROOT / "data" / "sample.parquet"


@pytest.fixture(scope="session")
def specs_dir() -> Path:
    """data/specs: the TOML specs shipped with the repository."""
    return REPO_ROOT / "data" / "specs"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` relative to the repository root (may be absent)."""
    return SHARED_DATA


@pytest.fixture(scope="session")
def california_path() -> Path:
    """The California housing Parquet file; skips the test when it is absent."""
    path = SHARED_DATA / "california_housing" / "housing.parquet"
    if not path.is_file():
        pytest.skip(f"real data not available: {path} is missing")
    return path
