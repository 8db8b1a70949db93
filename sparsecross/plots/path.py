"""``path --plot``: validation logloss and model size along the regularization path, one line
per l2; l1 = 0 in its own panel at the left (a log axis has no place for it); the budget as a
horizontal line; and the weight histograms of the L1 and L2-only models whose validation
loglosses are closest, with how close they are written in the figure."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SparseCrossError
from . import _common as C

__all__ = ["plot_path", "matched_pair"]

HIST_BINS = 80


def matched_pair(points: list[Any], l2_points: list[Any]) -> tuple[Any, Any] | None:
    """The (L1 point with l1 > 0, L2-only point) pair with the closest validation loglosses
    (ties: the smaller L1 model), among points that carry a model; None when a side is empty."""
    ones = [p for p in points if p.l1 > 0 and p.model is not None and np.isfinite(p.valid_logloss)]
    twos = [p for p in l2_points if p.model is not None and np.isfinite(p.valid_logloss)]
    if not ones or not twos:
        return None
    return min(((a, b) for a in ones for b in twos),
               key=lambda ab: (abs(ab[0].valid_logloss - ab[1].valid_logloss), ab[0].nonzeros))


def _size(p: Any, budget: dict[str, int] | None) -> int:
    return p.model_bytes if budget and "max_bytes" in budget else p.nonzeros


def _panels(fig: Any, has_zero: bool, has_hist: bool) -> tuple[list[Any], list[Any], Any]:
    """([logloss zero, logloss main], [size zero, size main], histogram axes): zero axes None
    without l1 = 0 points, the histogram None without an L2 path."""
    ratios = ([1] if has_zero else []) + [6] + ([5] if has_hist else [])
    gs = fig.add_gridspec(2, len(ratios), width_ratios=ratios)
    c = 1 if has_zero else 0
    loss = fig.add_subplot(gs[0, c])
    size = fig.add_subplot(gs[1, c], sharex=loss)
    z_loss = fig.add_subplot(gs[0, 0], sharey=loss) if has_zero else None
    z_size = fig.add_subplot(gs[1, 0], sharey=size) if has_zero else None
    hist = fig.add_subplot(gs[:, c + 1]) if has_hist else None
    return [z_loss, loss], [z_size, size], hist


def _draw_lines(axes: list[Any], points: list[Any], value: Any, colours: dict[float, Any]) -> None:
    zero_ax, ax = axes
    for l2, colour in colours.items():
        line = sorted((p for p in points if p.l2 == l2), key=lambda p: p.l1)
        pos = [p for p in line if p.l1 > 0]
        if pos:
            ax.plot([p.l1 for p in pos], [value(p) for p in pos], "o-", color=colour, ms=4,
                    label=f"l2 = {l2:g}", gid=f"l2={l2!r}")
        zero = [p for p in line if p.l1 == 0]
        if zero and zero_ax is not None:
            zero_ax.plot([0] * len(zero), [value(p) for p in zero], "o", color=colour, ms=6, gid=f"l2={l2!r}")
    ax.set_xscale("log")
    if zero_ax is not None:
        zero_ax.set_xticks([0], ["l1 = 0"])
        zero_ax.set_xlim(-1, 1)
        zero_ax.spines["right"].set_visible(False)
        ax.spines["left"].set_linestyle((0, (2, 2)))  # the break between l1 = 0 and l1 > 0


def _mark(axes: list[Any], p: Any, y: float, text: str) -> None:
    ax = axes[0] if p.l1 == 0 and axes[0] is not None else axes[1]
    x = 0 if p.l1 == 0 else p.l1
    ax.plot([x], [y], "*", color="black", ms=12, zorder=5, gid="chosen")
    ax.annotate(text, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)


def _histograms(ax: Any, a: Any, b: Any) -> dict[str, Any]:
    """Weights of L1 point ``a`` and L2 point ``b``, the touched coordinates with weight 0
    included (the spike at zero), bins over the full range (nothing clipped)."""
    def full(p: Any) -> np.ndarray:
        w = p.model.weights.astype(np.float64)
        return np.concatenate([w, np.zeros(max(int(p.touched) - len(w), 0))])

    w1, w2 = full(a), full(b)
    both = np.concatenate([w1, w2])
    lo, hi = float(both.min()), float(both.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    bins = np.linspace(lo, hi, HIST_BINS + 1)
    ax.hist(w1, bins=bins, alpha=0.6, color="tab:blue",
            label=f"L1 (l1={a.l1:g}, l2={a.l2:g}): {a.nonzeros:,} nonzero of {len(w1):,}")
    ax.hist(w2, bins=bins, alpha=0.6, color="tab:orange",
            label=f"L2 only (l2={b.l2:g}): {b.nonzeros:,} nonzero of {len(w2):,}")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("weight")
    ax.set_ylabel("touched coordinates")
    diff = abs(a.valid_logloss - b.valid_logloss)
    ax.set_title(f"weights at matched validation logloss\nL1 {a.valid_logloss:.4f} vs L2 {b.valid_logloss:.4f}: "
                 f"differ by {diff:.4f} ({diff / max(b.valid_logloss, 1e-12):.2%})", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    return {"l1_point": (a.l1, a.l2, a.valid_logloss), "l2_point": (b.l1, b.l2, b.valid_logloss),
            "difference": diff, "bins": (lo, hi)}


def _lines_drawn(axes: list[Any]) -> dict[str, Any]:
    zero_ax, ax = axes
    lines = {ln.get_gid(): [float(x) for x in ln.get_xdata()] for ln in ax.get_lines()
             if (ln.get_gid() or "").startswith("l2=")}
    zero = {} if zero_ax is None else {ln.get_gid(): [float(y) for y in ln.get_ydata()]
                                       for ln in zero_ax.get_lines() if (ln.get_gid() or "").startswith("l2=")}
    return {"lines": lines, "zero_points": zero}


def plot_path(points: list[Any], out: str | os.PathLike[str], *, l2_points: list[Any] | None = None,
              chosen: Any = None, budget: dict[str, int] | None = None, title: str | None = None,
              width: int = 1200, height: int = 500, dpi: int = 100) -> C.PlotInfo:
    """Validation logloss (top) and nonzeros (bottom; model bytes with a ``max_bytes``
    budget) against l1, one line per l2 of ``points`` (:class:`~sparsecross.path.PathPoint`),
    l1 = 0 in a separate left panel; ``budget`` (``PathResult.budget``) as a horizontal line,
    ``chosen`` starred.  With ``l2_points`` (an L2-only path, l1 = 0), a right panel shows the
    weight histograms of the L1 and L2 models whose validation loglosses are closest
    (:func:`matched_pair`) and how close they are.  ``info``: ``lines`` (gid ``l2=v`` -> its l1
    values), ``zero_points``, ``matched``, ``budget_line``, ``title``."""
    out = C.check_png(out)
    C.check_size(width, height)
    if not points:
        raise SparseCrossError("nothing to plot: the path is empty")
    pair = matched_pair(points, l2_points) if l2_points else None
    l2s = sorted({p.l2 for p in points})
    n_l1 = len({p.l1 for p in points})
    title = title or f"regularization path: {len(points)} models ({n_l1} l1 x {len(l2s)} l2)"
    fig = C.new_figure(width, height, dpi, layout="constrained")
    try:
        import matplotlib
        from matplotlib.ticker import FuncFormatter

        cmap = matplotlib.colormaps["viridis"]
        colours = {v: cmap(k / max(len(l2s) - 1, 1) * 0.85) for k, v in enumerate(l2s)}
        loss_axes, size_axes, hist = _panels(fig, any(p.l1 == 0 for p in points), pair is not None)
        _draw_lines(loss_axes, points, lambda p: p.valid_logloss, colours)
        _draw_lines(size_axes, points, lambda p: _size(p, budget), colours)
        what = "model bytes" if budget and "max_bytes" in budget else "nonzero weights"
        size_ax = size_axes[0] or size_axes[1]
        loss_ax = loss_axes[0] or loss_axes[1]
        if min(_size(p, budget) for p in points) > 0:
            size_axes[1].set_yscale("log")
        else:
            size_axes[1].set_yscale("symlog", linthresh=1)  # 0 nonzeros drawn at 0, not dropped
        size_ax.set_ylabel(what)
        loss_ax.set_ylabel("validation logloss")
        size_axes[1].set_xlabel("l1 (log scale)")
        loss_axes[1].tick_params(axis="x", which="both", labelbottom=False)
        size_axes[1].xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        minor = size_axes[1].xaxis.get_minor_formatter()  # matplotlib picks which minor ticks to label
        size_axes[1].xaxis.set_minor_formatter(FuncFormatter(lambda v, k: f"{v:g}" if minor(v, k) else ""))
        from matplotlib.lines import Line2D

        loss_axes[1].legend(handles=[Line2D([], [], color=c, marker="o", label=f"l2 = {v:g}")
                                     for v, c in colours.items()], fontsize=7, loc="best")
        if not any(p.l1 > 0 for p in points):
            loss_axes[1].text(0.5, 0.5, "no l1 > 0 in the grid", transform=loss_axes[1].transAxes, ha="center")
        if loss_axes[0] is not None:  # the l1 = 0 panels carry the y labels of their row
            for ax in (loss_axes[1], size_axes[1]):
                ax.tick_params(axis="y", which="both", labelleft=False)
        info: dict[str, Any] = {}
        if budget:
            value = next(iter(budget.values()))
            for ax in size_axes:
                if ax is not None:
                    ax.axhline(value, color="tab:red", ls="--", lw=1, gid="budget")
            size_axes[1].annotate(f"budget {value:,} {'bytes' if 'max_bytes' in budget else 'nonzeros'}",
                                  (0.01, value), xycoords=("axes fraction", "data"), color="tab:red", fontsize=8,
                                  textcoords="offset points", xytext=(0, 3))
        if chosen is not None:
            _mark(loss_axes, chosen, chosen.valid_logloss, f"chosen l1={chosen.l1:.3g}")
            _mark(size_axes, chosen, _size(chosen, budget), f"{_size(chosen, budget):,}")
        if pair is not None:
            info["matched"] = _histograms(hist, *pair)
        fig.suptitle(title, fontsize=10)
        C.save(fig, out, dpi)
        info.update(_lines_drawn(loss_axes), title=title)
        info["budget_line"] = next((float(ln.get_ydata()[0]) for ln in size_axes[1].get_lines()
                                    if ln.get_gid() == "budget"), None)
    finally:
        C.close(fig)
    return C.PlotInfo(Path(out), width, height, info)
