"""sparsecross: very wide, very sparse logistic regression on feature crosses.

Read Parquet, featurize into CSR rows over a huge (mostly empty) column space, train
FTRL-Proximal with state only for the features seen, and ship only the nonzero weights.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from .errors import (
    ArtifactError,
    CheckpointError,
    DataError,
    DataQualityWarning,
    EmptyModelWarning,
    NotFittedError,
    SchemaError,
    SparseCrossError,
    SparseCrossWarning,
    SpecError,
)
from .featurize import Batch, featurize, iter_batches, resolve_spec
from .spec import FeatureSpec, load_spec, parse_spec

try:
    __version__ = version("sparsecross")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "__version__",
    "ArtifactError",
    "Batch",
    "CheckpointError",
    "DataError",
    "DataQualityWarning",
    "EmptyModelWarning",
    "FeatureSpec",
    "NotFittedError",
    "SchemaError",
    "SparseCrossError",
    "SparseCrossWarning",
    "SpecError",
    "featurize",
    "iter_batches",
    "load_spec",
    "parse_spec",
    "resolve_spec",
]
