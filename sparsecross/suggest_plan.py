"""The steps of :func:`sparsecross.suggest.suggest_spec`: sample, label, columns, geo, crosses,
hashed-block size, TOML."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import NAME_LIMIT, DataError, shown
from .read import _bare
from .kinds.geo import level_tag
from .suggest import Suggestion, _geo_pairs, _label_table, _name, bits_for, no_columns_error
from .suggest_geo import CROSS_CELL_ROWS, _cells, choose_pyramid, pyramid_candidates
from .suggest_columns import (Planned, bool_column, estimate_distinct, list_column, number_column, string_column,
                              time_column)
from .suggest_profile import (column_type_class, float_values, label_of, plan_units, read_sample,
                              residual_entropy_share)
from .suggest_write import render

__all__ = ["plan"]

#: Most distinct values of a categorical proposed in a cross.
CROSS_MAX_VALUES = 200
#: Categoricals crossed with the geo level.
CROSS_TOP = 3


def _label_why(lab: dict[str, Any], y: np.ndarray, skipped_rows: int) -> list[str]:
    col = _bare(lab["column"])
    rule = (f"y = {col} {lab.get('compare', '>')} {shown(lab['threshold'])}" if "threshold" in lab
            else f"y = {col} in {shown(lab['positive'], NAME_LIMIT)}" if "positive" in lab
            else f"y = {col} (0/1)")
    why = [f"Label: {rule}; positive rate {y.mean():.1%} over {len(y):,} profiled rows"]
    if skipped_rows:
        why.append(f"{skipped_rows:,} profiled rows have no label (null or NaN): missing = \"skip\" leaves such rows out")
    return why


def _column(name: str, col: str, cls: str, arr: Any, y: np.ndarray, scale: float, rows: int
            ) -> tuple[list[Planned], list[str]] | str:
    if cls == "number":
        x = float_values(arr)
        xv = x[np.isfinite(x)]
        integer = _is_int(arr.type)
        monotone = bool(len(xv) > 2 and np.all(np.diff(xv) > 0))
        return number_column(name, col, arr, y, scale, rows, integer, monotone)
    if cls == "bool":
        got = bool_column(name, col, arr, y, scale, rows)
        return got if isinstance(got, str) else (got, [])
    if cls == "list":
        got = list_column(name, col, arr, y, scale, rows)
        return got if isinstance(got, str) else (got, [])
    if cls in ("time", "string"):
        parts = time_column(name, col, arr, y, scale, rows)
        if parts is not None:
            feats, _ = parts
            if not feats:
                return "a date or time without variation in the sample (no part has 2+ values)"
            return feats, []
        if cls == "time":
            return "no values in the sample"
    got = string_column(name, col, arr, y, scale, rows)
    return got if isinstance(got, str) else (got, [])


def _is_int(t: Any) -> bool:
    import pyarrow as pa

    t = t.value_type if pa.types.is_dictionary(t) else t
    return bool(pa.types.is_integer(t))


def _order_drift(y: np.ndarray) -> tuple[dict[str, Any], list[str]] | None:
    """``[train] shuffle = true`` when the label rate drifts through the data's order (the
    sample keeps it): over 10 consecutive slices of the sample, the spread of their positive
    rates exceeds both 0.05 and 6 binomial standard deviations of a slice."""
    if len(y) < 200:
        return None
    rates = np.array([s.mean() for s in np.array_split(y, 10)])
    p = float(y.mean())
    sd = (p * (1 - p) / (len(y) / 10)) ** 0.5
    spread = float(rates.max() - rates.min())
    if spread <= max(0.05, 6 * sd):
        return None
    return {"shuffle": True}, [f"The label rate drifts through the data's order (the positive rate of the sample's ten "
                               f"consecutive slices goes from {rates.min():.3f} to {rates.max():.3f}, more than 6 "
                               "standard deviations apart): FTRL learns in order, so read the rows in a seeded "
                               "shuffled order (train --shuffle; the Python train() takes shuffle=True)"]


def _crosses(features: list[Planned], geo: list[tuple[str, float, np.ndarray]], scale: float, rows: int,
             notes: list[str]) -> list[tuple[dict[str, Any], list[str], float]]:
    """Crosses worth trying: the coarse geo level x each of the strongest categoricals (by
    bias-corrected mutual information with the label), and the two strongest together.  A
    categorical that the area (the cell at the crossed level) almost determines is not crossed
    with it: its conditional entropy given the cell is under 10 % of its entropy."""
    cands = [p for p in features if p.strength is not None and p.codes is not None and p.strength > 0
             and p.distinct <= CROSS_MAX_VALUES]
    cands.sort(key=lambda p: (-p.strength, p.table["name"]))  # type: ignore[operator]
    top = cands[:CROSS_TOP]
    out = []
    geo_top = top
    if geo:
        cells = geo[0][2]
        geo_top = []
        for p in cands:
            left = residual_entropy_share(p.codes, cells)  # type: ignore[arg-type]
            if left < 0.1:
                notes.append(f"{p.table['name']}: not crossed with the area: the cell almost determines it (only "
                             f"{left:.0%} of its entropy is left given the cell)")
            elif len(geo_top) < CROSS_TOP:
                geo_top.append(p)

    def pair_distinct(a: np.ndarray, b: np.ndarray) -> float:
        ok = (a >= 0) & (b >= 0)
        _, inv = np.unique(np.stack([a[ok], b[ok]]), axis=1, return_inverse=True)
        codes = np.full(len(a), -1, dtype=np.int64)
        codes[ok] = inv.ravel()
        return estimate_distinct(codes, scale, rows)

    for gname, level, cells in geo[:1]:
        lv = f"{gname}@{level_tag(level)}"
        for p in geo_top:
            out.append(({"features": [lv, p.table["name"]]},
                        [f"{lv} x {p.table['name']}: the level at which a row's cell holds >= {CROSS_CELL_ROWS} "
                         f"training rows (median) crossed with a strong categorical ({p.strength:.4f} bits): "
                         "lets its effect vary by area"], pair_distinct(cells, p.codes)))  # type: ignore[arg-type]
    if len(top) >= 2:
        a, b = top[0], top[1]
        out.append(({"features": [a.table["name"], b.table["name"]]},
                    [f"{a.table['name']} x {b.table['name']}: the two strongest categoricals together"],
                    pair_distinct(a.codes, b.codes)))  # type: ignore[arg-type]
    return out


def _candidates(schema: Any, label: str, weight: str | None, skipped: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(column, type class) of the columns a feature may read; the others go to ``skipped``."""
    seen: set[str] = set()
    cands: list[tuple[str, str]] = []
    for f in schema:
        if f.name in (label, weight):
            continue
        cls = column_type_class(f.type)
        if f.name in seen:
            skipped.append((f.name, "the column name appears twice in the data"))
        elif cls is None:
            skipped.append((f.name, f"type {f.type} is read by no feature kind"))
        else:
            cands.append((f.name, cls))
        seen.add(f.name)
    return [c for c in cands if sum(1 for n in schema.names if n == c[0]) == 1]


def _labelled(sample: Any, lab: dict[str, Any]) -> tuple[Any, np.ndarray, int]:
    """(the sample's rows with a label, their 0/1 label, rows without one); sets ``missing =
    "skip"`` in ``lab`` when some have none."""
    from .spec_parse import _parse_label

    table = sample.table
    y, missing = label_of(table, _parse_label(lab))
    if missing.any():
        lab["missing"] = "skip"
        table = table.filter(np.asarray(~missing))
        y = y[~missing]
    n = len(y)
    if n == 0:
        raise DataError(f"label column {shown(lab['column'], NAME_LIMIT)} has no value in the {sample.table.num_rows:,} profiled rows")
    if y.min() == y.max():
        raise DataError(f"label {shown(lab['column'], NAME_LIMIT)} is constant in the sample: all {n:,} profiled rows are "
                        f"{'positive' if y[0] else 'negative'}; check --threshold/--compare/--positive")
    return table, y, int(missing.sum())


def _geo_features(pairs: list[tuple[str, str, str]], numbers: dict[str, np.ndarray], scale: float,
                  notes: list[str], table: Any, seed: int, toml_of: Any
                  ) -> tuple[list[Planned], list[tuple[str, float, np.ndarray]]]:
    """A pyramid per (name, latitude, longitude) (its levels chosen by validation on the sample,
    with the other features: ``toml_of(geo tables)`` is the spec without crosses), and (name,
    level to cross, the sample's cell codes at that level, -1 when missing) for the crosses."""
    features: list[Planned] = []
    geo: list[tuple[str, float, np.ndarray]] = []
    for gname, la, lo in pairs:
        lat, lon = numbers[la], numbers[lo]
        pyramids, stats, _, why = pyramid_candidates(lat, lon, scale)
        feat = {"name": gname, "kind": "geo", "lat": la, "lon": lo,
                "resolution_arcmin": [], "bands": True, "invalid": "missing"}
        done = [p.table for p in features]
        chosen, _, vwhy = choose_pyramid(table, seed, lambda g: toml_of(done + [g]), feat, pyramids)
        levels = list(chosen.levels)
        feat.update(resolution_arcmin=[float(v) for v in levels], bands=chosen.bands)
        cross = next((r for r in reversed(levels) if stats[r][1] >= CROSS_CELL_ROWS), levels[0])
        why = ([f"{la} / {lo}: a latitude/longitude pair (by name and value range)",
                "Geo pyramid: " + why[0]] + vwhy
               + ["Per level of the choice (cells occupied in the sample, median training rows in a row's cell): "
                  + ", ".join(f"{_num(r)}': {stats[r][0]:,} cells, {stats[r][1]:,.0f} rows" for r in levels),
                  "invalid = \"missing\": coordinates out of range (or null) go to the missing bucket instead of "
                  "stopping training"])
        zero = float(np.mean((lat == 0) & (lon == 0)))
        if zero > 0.01:
            notes.append(f"{zero:.1%} of the profiled rows sit exactly at ({la}, {lo}) = (0, 0), often a placeholder "
                         "for an unknown place; consider nulling them")
        features.append(Planned(feat, why))
        with np.errstate(invalid="ignore"):
            ok = ~np.isnan(lat) & ~np.isnan(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
        la0, lo0 = np.where(ok, lat, 0.0), np.where(ok, lon, 0.0)
        cells = np.where(ok, _cells(la0, lo0, cross), -1)  # the pyramid's own cell ids (int64, no collisions)
        geo.append((gname, cross, np.unique(cells, return_inverse=True)[1].ravel() - (cells.min() < 0)))
    return features, geo


def _num(v: float) -> float | int:
    return int(v) if float(v).is_integer() else v


def plan(source: Any, label: str, *, positive: Any, threshold: Any, compare: Any, weight: Any, sample_rows: int,
         seed: int) -> Suggestion:
    from .spec import parse_spec

    planned = plan_units(source)
    units, schema, where = planned
    lab = _label_table(label, positive, threshold, compare, weight, schema)
    skipped: list[tuple[str, str]] = [(label, "the label")] + ([(weight, "the sample weight column")] if weight else [])
    cands = _candidates(schema, label, weight, skipped)
    sample = read_sample(planned, [label] + ([weight] if weight else []) + [c for c, _ in cands], sample_rows, seed)
    table, y, unlabelled = _labelled(sample, lab)
    scale = sample.rows_total / max(sample.table.num_rows, 1)
    rows = int(round(len(y) * scale))  # training rows with a label, estimated
    taken: set[str] = set()
    notes: list[str] = []
    numbers = {c: float_values(table.column(c)) for c, cls in cands if cls == "number"}
    pairs = [(_name("geo", taken), la, lo) for la, lo in _geo_pairs([c for c, _ in cands], numbers)]
    geo_cols = {c for _, la, lo in pairs for c in (la, lo)}
    features: list[Planned] = []
    for col, cls in cands:
        if col in geo_cols:
            continue
        base = _name(col, taken)
        got = _column(base, col, cls, table.column(col), y, scale, rows)
        if isinstance(got, str):
            skipped.append((col, got))
            continue
        for p in got[0]:  # derived names (date_hour, x_value) may be another column's name
            if p.table["name"] != base:
                p.table["name"] = _name(p.table["name"], taken)
        features.extend(got[0])
        notes.extend(got[1])
    if not features and not pairs:
        raise no_columns_error([s for s in skipped if s[0] not in (label, weight)], weight)

    def toml_of(geo_tables: list[dict[str, Any]]) -> str:  # the spec without crosses, for validation
        bits = bits_for(sum(p.hashed for p in features))[0]
        return render([], lab, [], {"bits": bits, "seed": 0}, [], [(g, []) for g in geo_tables]
                      + [(p.table, []) for p in features], [], [], [])

    geo_features, geo = _geo_features(pairs, numbers, scale, notes, table, seed, toml_of)
    features = geo_features + features
    crosses = _crosses(features, geo, scale, rows, notes)
    bits, bits_why = bits_for(sum(p.hashed for p in features) + sum(c[2] for c in crosses))
    head = [f"Feature spec suggested by sparsecross suggest-spec from {where}: {table.num_rows:,} labelled rows "
            f"profiled of {sample.rows_total:,} ({sample.row_groups_read} of {sample.row_groups_total} row groups, "
            f"seed {seed}). Every choice below says why; review it, then: sparsecross train SPEC DATA --holdout 0.2 "
            "--out model.scx"]
    toml = render(head, lab, _label_why(lab, y, unlabelled), {"bits": bits, "seed": 0}, [bits_why],
                  [(p.table, p.why) for p in features], [(c[0], c[1]) for c in crosses], skipped, notes,
                  _order_drift(y))
    spec = parse_spec(toml)
    return Suggestion(toml, spec, tuple(skipped), int(table.num_rows), int(sample.rows_total),
                      tuple((str(f.table["lat"]), str(f.table["lon"])) for f in features if f.table["kind"] == "geo"))
