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
    OutputError,
    ParameterError,
    SchemaError,
    SparseCrossError,
    SparseCrossWarning,
    SpecError,
)
from .estimator import FTRLClassifier
from .export import load_model, save_model
from .featurize import Batch, featurize, iter_batches, resolve_spec
from .generate import generate
from .model import SparseModel
from .predict import evaluate, predict_file, predict_proba
from .spec import FeatureSpec, load_spec, parse_spec
from .state import FTRLState
from .train import ProgressEvent, TrainParams, train

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
    "OutputError",
    "ParameterError",
    "SchemaError",
    "SparseCrossError",
    "SparseCrossWarning",
    "SpecError",
    "FTRLClassifier",
    "FTRLState",
    "ProgressEvent",
    "SparseModel",
    "TrainParams",
    "evaluate",
    "featurize",
    "generate",
    "load_model",
    "predict_file",
    "predict_proba",
    "save_model",
    "train",
    "warmup",
    "iter_batches",
    "load_spec",
    "parse_spec",
    "resolve_spec",
]


def warmup() -> None:
    """Compile (or load from the on-disk cache) every kernel on tiny inputs, so the first real
    batch does not pay for compilation."""
    from ._warmup import warmup as _warmup

    _warmup()
