"""What a training run is given and what it reports as it goes: :class:`TrainParams` (the
FTRL-Proximal hyperparameters and the schedule) and :class:`ProgressEvent`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ._defaults import MAX_EPOCHS
from ._kernels.ftrl import FTRLParams
from ._values import PARAM_RULES, check_count, is_num
from .admission import AdmitPolicy
from .errors import ParameterError, shown
from .state16 import check_state_bits

__all__ = ["TrainParams", "ProgressEvent"]




#: TrainParams' float hyperparameters, each in its range (``_values.PARAM_RULES``).
FLOAT_PARAMS = ("alpha", "beta", "l1", "l2", "label_smoothing")


def check_param(name: str, value: Any) -> float:
    """``value`` as a Python float in the range of ``name`` (``_values.PARAM_RULES``), else a
    :class:`ParameterError` naming the parameter and its range."""
    ok, expected = PARAM_RULES[name]
    if not is_num(value) or not ok(value):
        raise ParameterError(f"{name} must be a finite number {expected}, got {shown(value)}")
    return float(value)


def check_epochs(value: Any, name: str) -> int:
    """``value`` as a Python int in [1, :data:`MAX_EPOCHS`], else a :class:`ParameterError`."""
    return check_count(name, value, 1, MAX_EPOCHS)


@dataclass(frozen=True)
class TrainParams:
    """FTRL-Proximal hyperparameters and the training schedule.

    Parameters
    ----------
    alpha : float in (0, 1e12], typical 0.05-0.5 (default 0.1)
        Learning-rate *scale*: coordinate i moves at rate ``alpha / (beta + sqrt(n_i))``.
        This is FTRL's alpha (McMahan et al.), NOT scikit-learn's regularization ``alpha``.
    beta : float in [0, 1e12], typical 1.0 (default 1.0)
        Smooths the per-coordinate rate at the start, while ``n_i`` is small.
    l1 : float in [0, 1e12], typical 0.1-10 (default 1.0)
        L1 strength: a weight is exactly 0 while ``|z_i| <= l1``.  Larger -> fewer nonzeros.
    l2 : float in [0, 1e12], typical 0-10 (default 0.0)
        L2 strength: shrinks weights, never makes them exactly zero.
    epochs : int, >= 1 (default 1)
        Passes over the data, in the same order each time.
    label_smoothing : float in [0, 1) (default 0.0)
        Targets become ``y * (1 - eps) + eps / 2``; metrics still use the true labels.
    holdout : float in (0, 1) or None
        Fraction of rows (chosen by a seeded hash of the row number) kept out of training and
        used for validation, when no separate validation data is given.
    state_dtype : "float32" or "float64" (default "float32")
        Precision of the stored z and n (float32: 12 bytes per slot with uint32 keys).
    admit : AdmitPolicy (default: every feature admitted)
        Which features get state: see :mod:`sparsecross.admission`.
    state_bits : 32 or 16 (default 32)
        16: z and n stored in 16 bits each (8-byte slots; :mod:`sparsecross.state16`), with a
        float32 state only.  Recorded in the model's parameters only when 16.
    """

    alpha: float = 0.1
    beta: float = 1.0
    l1: float = 1.0
    l2: float = 0.0
    epochs: int = 1
    label_smoothing: float = 0.0
    holdout: float | None = None
    state_dtype: str = "float32"
    admit: AdmitPolicy = AdmitPolicy()
    state_bits: int = 32

    def __post_init__(self) -> None:
        for name in FLOAT_PARAMS:  # Python floats: JSON, equality, the kernels
            object.__setattr__(self, name, check_param(name, getattr(self, name)))
        object.__setattr__(self, "epochs", check_epochs(self.epochs, "epochs"))
        if self.holdout is not None:
            if not (is_num(self.holdout) and PARAM_RULES["holdout"][0](self.holdout)):
                raise ParameterError(f"holdout must be a fraction in (0, 1), got {shown(self.holdout)}")
            object.__setattr__(self, "holdout", float(self.holdout))
        if self.state_dtype not in ("float32", "float64"):
            raise ParameterError(f"state_dtype must be 'float32' or 'float64', got {shown(self.state_dtype)}")
        check_state_bits(self.state_bits, self.state_dtype)

    @property
    def ftrl(self) -> FTRLParams:
        return FTRLParams(float(self.alpha), float(self.beta), float(self.l1), float(self.l2),
                          float(self.label_smoothing))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in FLOAT_PARAMS:
            d[k] = float(d[k])
        del d["admit"]
        d.update(self.admit.to_dict())  # nothing when every feature is admitted
        if self.state_bits == 32:  # the default: models and checkpoints as before state_bits existed
            del d["state_bits"]
        return d


@dataclass
class ProgressEvent:
    """A progress report: emitted about twice a second and at the end of every epoch."""

    epoch: int
    epochs: int
    rows_seen: int
    rows_total: int | None
    progressive_logloss: float
    touched: int
    elapsed_s: float
    phase: str = "train"  # "train", "validate" or "epoch_end"
    nonzeros: int | None = None  # live nonzero weights (|z| > l1) at the time of the event
    valid_logloss: float | None = None
    valid_auc: float | None = None
    state_bytes: int | None = None  # bytes of the optimizer state (table and filter) at the time
    extra: dict[str, Any] = field(default_factory=dict)
