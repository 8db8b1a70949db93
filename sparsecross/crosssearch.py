"""Greedy forward search over feature crosses, every round in one read of the data per epoch.

Candidates of a round: every pair of the spec's crossable features, and every cross chosen so
far with one more feature (up to :data:`~sparsecross.spec.MAX_CROSS_COMPONENTS`), less the
crosses the spec already has; when there are more than ``max_candidates``, those with the
highest interaction information with the label on a sample (:mod:`sparsecross.crosssearch_rank`)
are tried.  A round trains, side by side (:mod:`sparsecross.multitrain`),
one model on the current spec (the baseline) and one per candidate on the current spec *plus
that candidate's columns*; it keeps the candidate with the largest relative decrease of the
validation logloss if it beats ``min_gain``, and stops after ``k`` crosses or when none does.

How a candidate is evaluated: each batch is read once and featurized once under the current
spec; each candidate cross is featurized alone (a small spec of its component features, not
emitted, and the cross itself: same name, hence the same hash, same exact/hashed choice) and
its columns are placed after the current spec's columns, so a candidate's model sees exactly
the current spec's columns plus its own (a per-candidate column block, never shared with
another candidate or with the hashed block of the spec: no cross-candidate collisions).  We
retrain the whole model per candidate rather than AutoCross's field-wise shortcut (fixed base
model, only the new cross's weights trained on its residual): a full model is what the user
will train, the per-candidate cost is one extra kernel pass over the batch (the featurization
is shared), and it needs no new kernel.  A candidate's state is an ordinary state: its memory
is its touched keys, as any model's.

The gain of an exact cross is what adding it to the spec gives, up to float summation order;
a hashed cross in the real spec shares the hashed block with the spec's other hashed features
(collisions the search does not see).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ._defaults import CROSS_MIN_GAIN
from ._values import check_count, is_num
from .admission import policy_of
from .budget import check_max_state_mb
from .crosssearch_rank import feature_codes, rank_candidates
from .errors import DataError, SparseCrossError, SpecError, shown
from .featurize import featurize_features, iter_batches
from .hashing import holdout_salt
from .kinds import KINDS
from .multitrain import Item, Lane, run_lanes
from .read import DEFAULT_BATCH_ROWS, Source
from .spec import MAX_CROSS_COMPONENTS, Cross, FeatureSpec
from .spec_parse import _parse_cross, parse_spec
from .train import TrainParams, in_memory
from .train_eval import prepare_inputs
from .train_params import check_epochs, check_param

__all__ = ["AddedCross", "CrossSearchResult", "candidate_crosses", "search_crosses", "spec_text_with_crosses",
           "search_and_tune", "write_spec", "DEFAULT_MIN_GAIN", "DEFAULT_MAX_CANDIDATES"]

#: A cross must lower the validation logloss by 1% (relative) to be kept.  Smaller gains are
#: within the reach of optimizer artifacts: a cross that repeats an interaction the model
#: already has (a x b x c after a x b, c pure noise) learns it faster per epoch and "gains"
#: 0.2-0.8% in the tests' generated data; real interactions give several % (California: 2.8%
#: and 1.5% for the first two crosses), and every kept cross costs columns and memory.
DEFAULT_MIN_GAIN = CROSS_MIN_GAIN
#: Candidates per round (one state each); beyond this, those with the highest interaction
#: information with the label on a sample are tried (:mod:`sparsecross.crosssearch_rank`).
DEFAULT_MAX_CANDIDATES = 64


@dataclass
class AddedCross:
    features: tuple[str, ...]
    name: str
    gain: float  # relative decrease of the validation logloss: (before - after) / before
    logloss_before: float
    logloss_after: float
    round: int

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "name": self.name, "gain": self.gain,
                "logloss_before": self.logloss_before, "logloss_after": self.logloss_after, "round": self.round}


@dataclass
class CrossSearchResult:
    added: list[AddedCross]
    rounds: list[dict[str, Any]]  # per round: baseline logloss and every candidate's logloss and gain
    spec: FeatureSpec  # the input spec with the added crosses (unresolved, as given)
    params: dict[str, Any]
    seconds: float
    reads: int  # epochs read over all rounds
    note: str = ""
    stopped: str = field(default="")

    def to_dict(self) -> dict[str, Any]:
        return {"added": [a.to_dict() for a in self.added], "rounds": self.rounds, "params": self.params,
                "seconds": self.seconds, "reads": self.reads, "note": self.note, "stopped": self.stopped}


def _cross_of(spec: FeatureSpec, features: Sequence[str]) -> Cross | None:
    """The cross of ``features`` as the spec parser builds it, or None when the spec cannot
    hold it (a kind that cannot be crossed, a name already taken...)."""
    try:
        c = _parse_cross(0, {"features": list(features)}, spec.features, spec.feature_index, False)
    except SpecError:
        return None
    taken = set(spec.feature_names) | {c2.name for c2 in spec.crosses} | {f.pyramid[0] for f in spec.features
                                                                          if f.pyramid}
    return None if c.name in taken else c


def candidate_crosses(spec: FeatureSpec, chosen: Sequence[tuple[str, ...]] = ()) -> list[tuple[str, ...]]:
    """Pairs of crossable features and ``chosen`` crosses extended by one feature, in spec
    order, without the feature sets the spec already crosses, and without two levels or bands
    of one geo pyramid (a cell determines its coarser cells and its bands: such a cross only
    repeats the finer level, and took candidate places from useful pairs)."""
    names = [f.name for f in spec.features if KINDS[f.kind].crossable]
    group = {f.name: f.pyramid[0] for f in spec.features if f.pyramid is not None}
    have = {frozenset(c.features) for c in spec.crosses}
    out: list[tuple[str, ...]] = []
    seen: set[frozenset[str]] = set()

    def add(feats: tuple[str, ...]) -> None:
        key = frozenset(feats)
        groups = [group[f] for f in feats if f in group]
        if key in have or key in seen or len(key) != len(feats) or len(set(groups)) != len(groups):
            return
        seen.add(key)
        out.append(feats)

    for i, a in enumerate(names):
        for b in names[i + 1:]:
            add((a, b))
    for c in chosen:
        if len(c) < MAX_CROSS_COMPONENTS:
            for f in names:
                if f not in c:
                    add((*c, f))
    return out


def _mini_spec(spec: FeatureSpec, cross: Cross) -> FeatureSpec:
    """A spec that emits only ``cross``: its component features, not emitted themselves (a geo
    pyramid's level or band as a feature of its own: alone it is no pyramid)."""
    index = spec.feature_index
    feats = tuple(replace(spec.features[index[n]], standalone=False, pyramid=None) for n in cross.features)
    return replace(spec, features=feats, crosses=(cross,), train={})


def _items(source: Source, base: FeatureSpec, minis: Sequence[FeatureSpec], batch_rows: int) -> Iterator[Item]:
    """Batches under ``base``, each with every candidate's columns from the same Arrow batch."""
    grabbed: list[Any] = []

    def grab(record_batch: Any, row: int) -> None:
        grabbed[:] = [record_batch, row]

    for batch in iter_batches(source, base, batch_rows=batch_rows, observe=grab):
        record_batch, row = grabbed
        yield batch, [featurize_features(m, record_batch, row) for m in minis]


def check_min_gain(min_gain: Any) -> float:
    """``min_gain`` as a float: a finite relative gain in [0, 1) (a gain of 1 would be a
    logloss of 0), else a SparseCrossError; NaN and the infinities are refused."""
    if not (is_num(min_gain) and 0 <= min_gain < 1):
        raise SparseCrossError(f"min_gain must be a relative gain in [0, 1), got {shown(min_gain)}")
    return float(min_gain)


def search_crosses(
    source: Source,
    spec: FeatureSpec,
    *,
    k: int,
    min_gain: float = DEFAULT_MIN_GAIN,
    alpha: float | Sequence[float] = 0.1,
    beta: float = 1.0,
    l1: float = 1.0,
    l2: float = 0.0,
    epochs_max: int = 1,
    patience: int = 1,
    label_smoothing: float = 0.0,
    valid: Source | None = None,
    holdout: float | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    state_dtype: str = "float32",
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
    on_round: Callable[[int, int], None] | None = None,
    admit_after: int | None = None,
    admit_probability: float | None = None,
    admit_filter_mb: float | None = None,
    max_state_mb: float | None = None,
    state_bits: int = 32,
) -> CrossSearchResult:
    """Add up to ``k`` crosses to ``spec``, greedily, each the candidate with the largest
    relative validation gain if it is at least ``min_gain``.  Every model (baseline and
    candidates) trains with the same FTRL settings, each stopped early on its validation
    logloss (``epochs_max``, ``patience``), and is scored at its best epoch.

    ``alpha``: one value, or several: then every model is trained at each and scored at its
    best.  Several are safer: at too small an alpha, a cross that repeats an interaction the
    model has already (a x b x c after a x b) "helps" by learning it faster, a gain a larger
    alpha gives the baseline too.  Costs one lane (state) per model and alpha.

    ``admit_after``, ``admit_probability``, ``admit_filter_mb``, ``max_state_mb``: admission and
    the state budget, as ``train``'s: every model (baseline and candidate) at every alpha has its
    own filter and its own budget (the states together hold up to lanes x ``max_state_mb`` MiB).
    ``state_bits``: 32 or 16, as ``train``'s, for every model.

    Raises
    ------
    SparseCrossError
        ``k < 1``, a bad ``min_gain``, no validation data, data that do not match the spec.
    """
    check_count("k", k, 1)  # crosses to add (a ParameterError)
    check_min_gain(min_gain)
    if valid is None and holdout is None:
        raise SparseCrossError("the cross search needs validation data: give valid data or a holdout fraction")
    if valid is not None and holdout is not None:
        raise SparseCrossError("give either valid data or a holdout fraction, not both")
    source, valid = in_memory(source, valid)
    several = isinstance(alpha, Iterable) and not isinstance(alpha, (str, bytes))
    alphas = list(alpha) if several else [alpha]  # (one value, even a wrong one, checked below)
    if not alphas:
        raise SparseCrossError("search_crosses: alpha is an empty list")
    alphas = [check_param("alpha", a) for a in alphas]  # each in train's range, in train's words
    epochs_max, patience = check_epochs(epochs_max, "epochs_max"), check_epochs(patience, "patience")
    admit = policy_of(admit_after, admit_probability, admit_filter_mb)
    max_state_mb = check_max_state_mb(max_state_mb)
    tps = [TrainParams(a, beta, l1, l2, epochs_max, label_smoothing, holdout, state_dtype, admit, state_bits)
           for a in alphas]
    t0 = time.perf_counter()
    _, resolved, rows = prepare_inputs(source, spec, valid, batch_rows, holdout)
    tps = [replace(tp, admit=admit.sized(rows)) for tp in tps]  # as train(): the filter sized from the rows
    salt = holdout_salt(resolved.hashing.seed)
    added: list[AddedCross] = []
    rounds: list[dict[str, Any]] = []
    reads = 0
    note = ""
    ranking: tuple[dict[str, Any], Any] | None = None  # feature codes and labels of a sample, when needed
    stopped = f"{k} cross(es) added"
    for r in range(1, k + 1):
        base = replace(resolved, crosses=resolved.crosses + tuple(_cross_of_checked(resolved, a.features)
                                                                  for a in added))
        cands = [(f, c) for f in candidate_crosses(base, [a.features for a in added])
                 if (c := _cross_of(base, f)) is not None]
        if len(cands) > max_candidates:
            if ranking is None:
                # every crossable feature: a later round's extension may name one no pair of this round had
                names = [f.name for f in resolved.features if KINDS[f.kind].crossable]
                ranking = feature_codes(source, resolved, names, seed=resolved.hashing.seed,
                                            holdout=holdout)  # validation rows never rank
            ranked = rank_candidates([f for f, _ in cands], [a.features for a in added], *ranking)
            note = (f"{len(cands)} candidates per round; the {max_candidates} with the highest interaction "
                    f"information with the label on a {len(ranking[1]):,}-row sample were tried")
            cands = [cands[i] for i in sorted(i for _, i in ranked[:max_candidates])]
        if not cands:
            stopped = "no candidate cross left"
            break
        if on_round is not None:
            on_round(r, len(cands))
        best, n_reads = _round(source, valid, base, [c for _, c in cands], tps, rows=rows, epochs_max=epochs_max,
                               patience=patience, holdout=holdout, salt=salt, batch_rows=batch_rows,
                               max_state_mb=max_state_mb)
        reads += n_reads
        before, base_alpha = best[0]
        if math.isnan(before):
            raise DataError("the cross search scored no validation rows; give more validation data")
        scores = [(ll, f, c, a) for (ll, a), (f, c) in zip(best[1:], cands)]
        rounds.append({"round": r, "baseline_logloss": before, "baseline_alpha": base_alpha, "candidates": [
            {"features": list(f), "valid_logloss": ll, "alpha": a, "gain": (before - ll) / before}
            for ll, f, _, a in scores]})
        ll, f, c, _ = min(scores, key=lambda s: (math.isnan(s[0]), s[0] if not math.isnan(s[0]) else 0.0))
        gain = (before - ll) / before
        if math.isnan(ll) or gain < min_gain:
            stopped = (f"no candidate gains {min_gain:.2%} (the best, {' x '.join(f)}, "
                       f"{'gains nothing' if math.isnan(ll) else f'{gain:+.3%}'})")
            break
        added.append(AddedCross(f, c.name, gain, before, ll, r))
    final = replace(spec, crosses=spec.crosses + tuple(_cross_of_checked(spec, a.features) for a in added))
    params = {"alpha": alphas, "beta": beta, "l1": l1, "l2": l2, "epochs_max": epochs_max, "patience": patience,
              "min_gain": min_gain, "k": k, **admit.to_dict()}
    if max_state_mb is not None:
        params["max_state_mb"] = max_state_mb
    return CrossSearchResult(added, rounds, final, params, time.perf_counter() - t0, reads, note, stopped)


def _round(source: Source, valid: Source | None, base: FeatureSpec, crosses: Sequence[Cross],
           tps: Sequence[TrainParams], *, rows: int, epochs_max: int, patience: int, holdout: float | None,
           salt: int, batch_rows: int, max_state_mb: float | None = None) -> tuple[list[tuple[float, float]], int]:
    """Train the baseline and every candidate at every alpha of ``tps`` in one read per epoch;
    returns ((best validation logloss, its alpha) of the baseline then of each candidate, reads)."""
    minis = [_mini_spec(base, c) for c in crosses]
    seed = base.hashing.seed
    lanes = [Lane.new(tp, base.n_columns, rows, seed=seed, max_state_mb=max_state_mb) for tp in tps]
    lanes += [Lane.new(tp, base.n_columns + m.n_columns, rows, view=i, offset=base.n_columns, seed=seed,
                       max_state_mb=max_state_mb)
              for i, m in enumerate(minis) for tp in tps]
    reads = run_lanes(
        lanes, epochs_max=epochs_max, patience=patience,
        train_items=lambda epoch: _items(source, base, minis, batch_rows),
        valid_items=lambda: _items(valid if valid is not None else source, base, minis, batch_rows),
        holdout=holdout, salt=salt, skipping=base.label.missing == "skip",
    )
    n = len(tps)
    return [_best(lanes[j * n:(j + 1) * n]) for j in range(len(crosses) + 1)], reads


def _best(lanes: Sequence[Lane]) -> tuple[float, float]:
    """(lowest validation logloss, its alpha) of one model's lanes; NaN only if all are."""
    ok = [lane for lane in lanes if not math.isnan(lane.best_logloss)]
    if not ok:
        return math.nan, lanes[0].params.alpha
    lane = min(ok, key=lambda x: x.best_logloss)
    return lane.best_logloss, lane.params.alpha


def _cross_of_checked(spec: FeatureSpec, features: Sequence[str]) -> Cross:
    c = _cross_of(spec, features)
    assert c is not None, features
    return c


def spec_text_with_crosses(text: str, added: Sequence[AddedCross]) -> str:
    """The spec's TOML ``text`` (comments kept) with one ``[[crosses]]`` table per added cross
    appended, each with a comment giving its gain.  The result is parsed back to check it
    holds exactly these crosses.

    Raises
    ------
    SpecError
        The text cannot take appended tables (e.g. its crosses are an inline array)."""
    parts = [text.rstrip("\n"), ""]
    if not added:
        return "\n".join(parts + ["# `sparsecross tune --search-crosses` found no cross worth adding."]) + "\n"
    parts += ["# Crosses added by `sparsecross tune --search-crosses` (greedy forward search;",
              "# gain: relative decrease of the validation logloss when the cross was added)."]
    for a in added:
        parts += ["", f"# round {a.round}: gain {a.gain:.3%} (validation logloss {a.logloss_before:.6f} -> "
                      f"{a.logloss_after:.6f})",
                  "[[crosses]]", "features = [" + ", ".join(json.dumps(n) for n in a.features) + "]"]
    out = "\n".join(parts) + "\n"
    try:
        spec = parse_spec(out)
    except SpecError as exc:
        raise SpecError(f"cannot append the found crosses to this spec ({exc}); add them by hand: "
                        + "; ".join(" x ".join(a.features) for a in added)) from None
    got = [c.features for c in spec.crosses[len(spec.crosses) - len(added):]]
    if got != [a.features for a in added]:
        raise SpecError("the spec with the appended crosses does not read back as expected; add them by hand: "
                        + "; ".join(" x ".join(a.features) for a in added))
    return out


def write_spec(text: str, out: str | os.PathLike[str]) -> None:
    """Write spec ``text`` to ``out`` atomically (the caller has checked it is not an input)."""
    from .files import atomic_output

    with atomic_output(out, "spec") as fh:
        fh.write(text.encode("utf-8"))


def search_and_tune(source: Source, spec: FeatureSpec, *, k: int, min_gain: float = DEFAULT_MIN_GAIN,
                    max_candidates: int = DEFAULT_MAX_CANDIDATES, on_round: Callable[[int, int], None] | None = None,
                    **tune_options: Any) -> tuple[CrossSearchResult, Any, Any]:
    """``tune`` the grid on ``spec``, search crosses with its best point's l1 and every alpha
    of the grid (the same ``epochs_max`` and ``patience``), then ``tune`` the grid again on the spec with the
    crosses found (not when none was: the first result is the answer).

    The cross search reads in the files' order even with ``shuffle`` (its models are only
    compared with each other).  Returns (search, first tune, final tune)."""
    from .train_options import resolve_train_options
    from .tune import DEFAULT_ALPHA, DEFAULT_EPOCHS_MAX, tune

    first = tune(source, spec, **tune_options)
    pick = first.chosen or min(first.points, key=lambda p: (math.isnan(p.valid_logloss), p.valid_logloss))
    # the settings the first tune resolved (its arguments > the spec's [train] table > defaults)
    o = resolve_train_options(spec, tune_options, valid=tune_options.get("valid"))
    opts = {n: o[n] for n in ("beta", "l2", "label_smoothing", "holdout", "batch_rows", "admit_after",
                              "admit_probability", "admit_filter_mb", "max_state_mb", "state_bits")}
    opts.update({n: tune_options[n] for n in ("valid", "state_dtype") if n in tune_options})
    opts["patience"] = first.patience
    alphas = tune_options.get("alpha", DEFAULT_ALPHA)
    search = search_crosses(source, spec, k=k, min_gain=min_gain, alpha=alphas, l1=pick.l1,
                            epochs_max=tune_options.get("epochs_max", DEFAULT_EPOCHS_MAX),
                            max_candidates=max_candidates, on_round=on_round, **opts)
    final = tune(source, search.spec, **tune_options) if search.added else first
    return search, first, final
