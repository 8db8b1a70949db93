"""sparsecross: very wide, very sparse logistic regression on feature crosses.

Read Parquet, featurize into CSR rows over a huge (mostly empty) column space, train
FTRL-Proximal with state only for the features seen, and ship only the nonzero weights.
"""

from __future__ import annotations

import logging
import sys
import types
from importlib import import_module
from typing import TYPE_CHECKING, Any

# Every public name is imported from its module on first use (PEP 562), so that
# ``import sparsecross`` and ``sparsecross --help`` load neither Numba, SciPy nor pyarrow.
_ORIGIN = {
    "ArtifactError": "errors",
    "CheckpointError": "errors",
    "DataError": "errors",
    "DataQualityWarning": "errors",
    "EmptyModelWarning": "errors",
    "InputTypeError": "errors",
    "NotFittedError": "errors",
    "OutputError": "errors",
    "ParameterError": "errors",
    "SchemaError": "errors",
    "SparseCrossError": "errors",
    "SparseCrossWarning": "errors",
    "SpecError": "errors",
    "FTRLClassifier": "estimator",
    "load_model": "export",
    "save_model": "export",
    "Batch": "featurize",
    "featurize": "featurize",
    "iter_batches": "featurize",
    "resolve_spec": "featurize",
    "generate": "generate",
    "SparseModel": "model",
    "evaluate": "predict",
    "predict_file": "predict",
    "predict_proba": "predict",
    "FeatureSpec": "spec",
    "load_spec": "spec",
    "parse_spec": "spec",
    "FTRLState": "state",
    "Suggestion": "suggest",
    "suggest_spec": "suggest",
    "ProgressEvent": "train",
    "TrainParams": "train",
    "train": "train",
}

#: Public functions named like the module they live in: ``sparsecross.train`` is the function,
#: as it always was, even after the submodule ``sparsecross.train`` has been imported.
_SHADOWED = frozenset(n for n, m in _ORIGIN.items() if n == m)
#: Submodules that the eager ``__init__`` used to import (directly or not).
_SUBMODULES = frozenset({"checkpoint", "errors", "estimator", "export", "featurize", "files", "generate",
                         "hashing", "metrics", "model", "predict", "read", "schema", "spec", "state"})

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .errors import (ArtifactError, CheckpointError, DataError, DataQualityWarning, EmptyModelWarning,
                         InputTypeError, NotFittedError, OutputError, ParameterError, SchemaError, SparseCrossError,
                         SparseCrossWarning, SpecError)
    from .estimator import FTRLClassifier
    from .export import load_model, save_model
    from .featurize import Batch, featurize, iter_batches, resolve_spec
    from .generate import generate
    from .model import SparseModel
    from .predict import evaluate, predict_file, predict_proba
    from .spec import FeatureSpec, load_spec, parse_spec
    from .state import FTRLState
    from .suggest import Suggestion, suggest_spec
    from .train import ProgressEvent, TrainParams, train

    __version__: str


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sparsecross")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name in _ORIGIN:
        value = getattr(import_module(f".{_ORIGIN[name]}", __name__), name)
    elif name in _SUBMODULES:  # ``import sparsecross; sparsecross.spec.X`` worked when all was eager
        return import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """Importing the submodule ``sparsecross.train`` makes Python set the package attribute
    ``train`` to that module; keep the public function there instead (``sx.train(...)``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if (name in _SHADOWED and isinstance(value, types.ModuleType)
                and value.__name__ == f"{__name__}.{name}"):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

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
    "InputTypeError",
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
    "suggest_spec",
    "Suggestion",
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
