"""Plots (matplotlib is an optional extra: ``pip install 'sparsecross[plot]'``).

* :func:`plot_path`: nonzeros and validation logloss against l1 (too small / appropriate /
  too large), plus, when an L2-only companion path is given, histograms of the weights under
  L1 and under L2 at matched validation loss.
* :func:`plot_weights_map`: a map of the geo cell weights of a model.

Files are written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OutputError, SparseCrossError
from .files import atomic_output
from .model import SparseModel

__all__ = ["plot_path", "plot_weights_map", "require_matplotlib"]


def require_matplotlib() -> Any:
    """Import matplotlib with the Agg backend, or raise a one-line error naming the extra."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        raise SparseCrossError(
            "plotting needs matplotlib: pip install 'sparsecross[plot]' (or pip install matplotlib)"
        ) from None
    return plt


def _save(fig: Any, out: str | os.PathLike[str], dpi: int) -> Path:
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise SparseCrossError(f"plots are written as PNG; give a file name ending in .png, got {str(out)!r}")
    if not out.parent.exists():
        raise SparseCrossError(f"folder {str(out.parent)!r} does not exist")
    with atomic_output(out, "plot", OutputError) as fh:
        fig.savefig(fh, dpi=dpi, format="png")
    return out


def plot_path(points: list[Any], out: str | os.PathLike[str], *, l2_points: list[Any] | None = None,
              chosen: Any = None, width: int = 1200, height: int = 500, dpi: int = 100) -> Path:
    """Nonzeros and validation logloss against l1 (log x axis; l1 = 0 drawn at the left edge).

    With ``l2_points`` (an L2-only path, l1 = 0), a second panel shows the weight histograms of
    the chosen (or best) L1 model and of the L2 model with the closest validation logloss.
    The image is ``width`` x ``height`` pixels.
    """
    plt = require_matplotlib()
    line = sorted([p for p in points if p.l2 == min(q.l2 for q in points)], key=lambda p: p.l1)
    if not line:
        raise SparseCrossError("nothing to plot: the path is empty")
    ncols = 2 if l2_points else 1
    fig, axes = plt.subplots(1, ncols, figsize=(width / dpi, height / dpi), dpi=dpi, squeeze=False)
    ax = axes[0, 0]
    positive = [p.l1 for p in line if p.l1 > 0]
    zero_x = min(positive) / 3 if positive else 1e-3
    xs = [p.l1 if p.l1 > 0 else zero_x for p in line]
    ax.plot(xs, [max(p.nonzeros, 1) for p in line], "o-", color="tab:blue", label="nonzero weights")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("l1  (l1 = 0 drawn at the left edge)")
    ax.set_ylabel("nonzero weights", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(xs, [p.valid_logloss for p in line], "s--", color="tab:red", label="validation logloss")
    ax2.set_ylabel("validation logloss", color="tab:red")
    if chosen is not None:
        cx = chosen.l1 if chosen.l1 > 0 else zero_x
        ax.axvline(cx, color="gray", lw=1, ls=":")
        ax.annotate(f"chosen l1={chosen.l1:.3g}\n{chosen.nonzeros:,} nz", (cx, max(chosen.nonzeros, 1)),
                    textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_title(f"L1 path (l2={line[0].l2:g}): too small has no effect, too large collapses")
    if l2_points:
        ref = chosen or min(line, key=lambda p: p.valid_logloss)
        match = min(l2_points, key=lambda p: abs(p.valid_logloss - ref.valid_logloss))
        axh = axes[0, 1]
        w1 = ref.model.weights if ref.model is not None else np.zeros(0)
        w2 = match.model.weights if match.model is not None else np.zeros(0)
        n_touched = max(ref.touched, 1)
        all_w = np.concatenate([w1, w2]) if len(w1) + len(w2) else np.zeros(1)
        lim = float(np.quantile(np.abs(all_w), 0.999)) or 1.0
        bins = np.linspace(-lim, lim, 81)
        # Touched coordinates with weight 0 belong in the L1 histogram: the spike at zero.
        w1_full = np.concatenate([w1, np.zeros(max(n_touched - len(w1), 0), dtype=np.float32)])
        axh.hist(np.clip(w1_full, -lim, lim), bins=bins, alpha=0.6, color="tab:blue",
                 label=f"L1 l1={ref.l1:g}: {len(w1):,} nonzero of {n_touched:,}")
        axh.hist(np.clip(w2, -lim, lim), bins=bins, alpha=0.6, color="tab:orange",
                 label=f"L2 l2={match.l2:g}: {len(w2):,} nonzero")
        axh.set_yscale("log")
        axh.set_xlabel("weight")
        axh.set_ylabel("touched features")
        axh.set_title(f"weights at matched validation logloss ({ref.valid_logloss:.4f} vs {match.valid_logloss:.4f})")
        axh.legend(fontsize=8)
    fig.tight_layout()
    try:
        return _save(fig, out, dpi)
    finally:
        plt.close(fig)


def plot_weights_map(model: SparseModel, out: str | os.PathLike[str], *, feature: str | None = None,
                     width: int = 1400, height: int = 750, dpi: int = 100) -> Path:
    """A world map (equirectangular lon/lat axes) of a geo feature's cell weights.

    Each nonzero cell is drawn at its centre, colored by weight (red positive, blue negative).
    ``feature`` names a geo feature, a level of a geo pyramid (``cell@6``) or a pyramid
    (``cell``: its finest level); by default the first geo feature (a pyramid's finest level).
    """
    plt = require_matplotlib()
    spec = model.spec
    geo = [f for f in spec.features if f.kind == "geo" and f.standalone]
    if feature is None and geo and geo[0].pyramid is not None:
        feature = geo[0].pyramid[0]
    if feature is not None and spec.pyramid_levels(feature):
        feature = spec.pyramid_levels(feature)[-1].name  # the finest level
    if feature is not None:
        geo = [f for f in geo if f.name == feature]
        if not geo:
            names = [f.name for f in spec.features if f.kind == "geo" and f.standalone]
            raise SparseCrossError(f"model has no standalone geo feature {feature!r}; geo features: {names}")
    if not geo:
        raise SparseCrossError("model has no standalone geo feature to map")
    f = geo[0]
    block = next(o for o in spec.outputs if o.kind == 0 and o.name == f.name)
    keys = model.keys.astype(np.int64)
    sel = (keys >= block.offset) & (keys < block.offset + int(block.cardinality or 0) - 1)
    local = keys[sel] - block.offset
    w = model.weights[sel]
    n_lon = f.grid[1]
    r = f.resolution_arcmin / 60.0
    lat = -90 + (local // n_lon + 0.5) * r
    lon = -180 + (local % n_lon + 0.5) * r
    fig, ax = plt.subplots(figsize=(width / dpi, height / dpi), dpi=dpi)
    lim = float(np.quantile(np.abs(w), 0.99)) if len(w) else 1.0
    order = np.argsort(np.abs(w))
    sc = ax.scatter(lon[order], lat[order], c=w[order], cmap="RdBu_r", vmin=-lim, vmax=lim, s=2, linewidths=0)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_aspect("equal")
    ax.set_facecolor("#f2f2f2")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(f"{f.name}: {len(w):,} nonzero cell weights at {f.resolution_arcmin:g} arc-minutes "
                 f"(of {f.grid[0] * f.grid[1]:,} cells)")
    fig.colorbar(sc, ax=ax, shrink=0.7, label="weight")
    fig.tight_layout()
    try:
        return _save(fig, out, dpi)
    finally:
        plt.close(fig)
