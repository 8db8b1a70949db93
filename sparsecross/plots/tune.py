"""``tune --plot``: the alpha x l1 grid as a heat map of validation logloss, the nonzeros
written in each cell, the best cell outlined.  Axes are categorical (one column per l1, l1 = 0
included as it is), so no value is faked on a log axis."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SparseCrossError
from . import _common as C

__all__ = ["plot_tune", "tune_grid"]


KEYS = ("alpha", "l1", "valid_logloss", "nonzeros")


def _as_dict(k: int, p: Any) -> dict[str, Any]:
    """The four values of point ``p`` (a mapping, or an object such as
    :class:`sparsecross.tune.TunePoint` with those attributes)."""
    get = (lambda key: p.get(key, ...)) if isinstance(p, Mapping) else (lambda key: getattr(p, key, ...))
    d = {key: get(key) for key in KEYS}
    missing = [key for key, v in d.items() if v is ...]
    if missing:
        raise SparseCrossError(f"tune point {k} has no {', '.join(missing)}")
    return d


def tune_grid(points: list[Any]) -> tuple[list[float], list[float], np.ndarray, np.ndarray]:
    """``(alphas, l1s, logloss[alpha, l1], nonzeros[alpha, l1])`` of the points (dicts with
    keys alpha, l1, valid_logloss, nonzeros, or objects with those attributes such as
    ``TuneResult.points``; anything else ignored); NaN / -1 where the grid has no point.  A
    setting given twice keeps its lower validation logloss."""
    points = [_as_dict(k, p) for k, p in enumerate(points)]
    alphas = sorted({float(p["alpha"]) for p in points})
    l1s = sorted({float(p["l1"]) for p in points})
    loss = np.full((len(alphas), len(l1s)), np.nan)
    nz = np.full((len(alphas), len(l1s)), -1, dtype=np.int64)
    for p in points:
        i, j = alphas.index(float(p["alpha"])), l1s.index(float(p["l1"]))
        v = float(p["valid_logloss"])
        v = v if math.isfinite(v) else np.nan
        if np.isnan(loss[i, j]) or (not np.isnan(v) and v < loss[i, j]):
            loss[i, j], nz[i, j] = v, int(p["nonzeros"])
    return alphas, l1s, loss, nz


def plot_tune(points: list[Any], out: str | os.PathLike[str], *, title: str | None = None,
              width: int = 900, height: int = 600, dpi: int = 100) -> C.PlotInfo:
    """Heat map of validation logloss over alpha (rows) x l1 (columns), each cell labelled with
    its logloss and nonzeros, the best (lowest logloss) cell outlined in black.  Cells of the
    grid without a point are grey.  ``info``: ``alphas``, ``l1s``, ``shape``, ``best`` (alpha,
    l1, logloss), ``best_outline`` (row, column of the outline drawn), ``cell_texts`` (the
    labels drawn, by [row][column]), ``drawn_texts``, ``title``."""
    out = C.check_png(out)
    C.check_size(width, height)
    if not points:
        raise SparseCrossError("nothing to plot: no tune points")
    alphas, l1s, loss, nz = tune_grid(points)
    if np.isnan(loss).all():
        raise SparseCrossError("nothing to plot: no tune point has a finite validation logloss")
    bi, bj = np.unravel_index(np.nanargmin(loss), loss.shape)
    title = title or (f"tune: validation logloss over {len(alphas)} alpha x {len(l1s)} l1 "
                      f"({len(points)} points); best alpha={alphas[bi]:g}, l1={l1s[bj]:g}")
    fig = C.new_figure(width, height, dpi, layout="constrained")
    try:
        from matplotlib.patches import Rectangle

        ax = fig.add_subplot()
        ax.set_facecolor("#d9d9d9")
        im = ax.imshow(np.ma.masked_invalid(loss), cmap="viridis_r", aspect="auto", origin="lower")
        finite = loss[np.isfinite(loss)]
        mid = (finite.min() + finite.max()) / 2
        texts = [["" for _ in l1s] for _ in alphas]
        for i in range(len(alphas)):
            for j in range(len(l1s)):
                if nz[i, j] < 0:
                    continue
                ll = "n/a" if np.isnan(loss[i, j]) else f"{loss[i, j]:.4f}"
                texts[i][j] = f"{ll}\n{nz[i, j]:,} nz"
                dark = not np.isnan(loss[i, j]) and loss[i, j] > mid  # viridis_r: high loss is dark
                ax.text(j, i, texts[i][j], ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
        ax.add_patch(Rectangle((bj - 0.5, bi - 0.5), 1, 1, fill=False, ec="black", lw=3, gid="best"))
        ax.set_xticks(range(len(l1s)), [f"{v:g}" for v in l1s])
        ax.set_yticks(range(len(alphas)), [f"{v:g}" for v in alphas])
        ax.set_xlabel("l1")
        ax.set_ylabel("alpha (FTRL learning-rate scale)")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, label="validation logloss (lower is better; best cell outlined)")
        C.save(fig, out, dpi)
        info = {"alphas": alphas, "l1s": l1s, "shape": loss.shape, "title": title,
                "best": (alphas[bi], l1s[bj], float(loss[bi, bj])), "cell_texts": texts,
                "best_outline": next((round(p.get_y() + 0.5), round(p.get_x() + 0.5)) for p in ax.patches
                                     if p.get_gid() == "best"),
                "drawn_texts": sorted(t.get_text() for t in ax.texts)}
    finally:
        C.close(fig)
    return C.PlotInfo(Path(out), width, height, info)
