"""Synthetic geo click-log generator with a planted sparse logistic model.

:func:`generate` writes one Parquet file of synthetic rows that look like a global mobile/web
event log, with a binary ``label`` drawn from a *known* logistic model whose strongest signal
lives on individual arc-minute cells.  It is the data behind ``data/sample.parquet``, the
benchmarks and the tests: a learner that recovers the hot cells is doing its job.

Columns
-------
============  ========  ===================================================================
name          type      content
============  ========  ===================================================================
latitude      float64   degrees in [-90, 90], 6 decimals
longitude     float64   degrees in [-180, 180], 6 decimals
device        string    "android", "ios", "desktop", "tablet", "other" (45/28/18/6/3 %)
user_id       int64     Zipf-like user id in [0, 2**24), about 5 million possible users
age           float64   whole years in [18, 90]; about 5 % nulls
income        float64   log-normal (median about 45,000), rounded to 100; about 3 % nulls
hour          int64     0..23, daily cycle peaking in the evening
label         int8      0 / 1 from the planted model below; positive rate about 25 %
============  ========  ===================================================================

Geography
---------
A *world* is derived from the seed alone: 40 mega-regions (centres uniform on the sphere
between 45 S and 65 N) holding 1,200 population clusters.  Cluster weights follow a Zipf law
(weight of the k-th cluster proportional to ``k**-0.8``).  Cluster spreads (Gaussian sigma) are
city-sized for 70 % of the clusters (1.5-20 arc-minutes), metropolitan for 25 % (20-90
arc-minutes) and regional for 5 % (1.5-4 degrees); 20 % of a cluster's points come from a
halo three times wider.  10 % of all rows are background noise, uniform on the sphere
(``lat = degrees(arcsin(u))``, ``u ~ U[-1, 1]``).  Longitude is wrapped to [-180, 180),
latitude clipped to [-90, 90], both rounded to 6 decimals.

Planted model
-------------
``label ~ Bernoulli(sigmoid(logit))`` with ::

    logit = BASE_LOGIT + hot(cell) + regional(lat, lon) + device + age + income + hour + user

Every hash below is MurmurHash3's finalizer ``fmix64`` (see ``docs/CONTRACT.md``) on unsigned
64-bit integers, and ``unit(h) = (h >> 11) * 2**-53`` maps a hash to [0, 1).  The salts are
``salt(tag) = fmix64(seed XOR tag)`` with the 64-bit tags :data:`TAG_CELL`,
:data:`TAG_REGION`, :data:`TAG_USER` and :data:`TAG_USER_ID` (ASCII words, big-endian).

* ``hot(cell)``: ``cell = i * 21600 + j`` with ``i = clip(floor((lat + 90) * 60), 0, 10799)``
  and ``j = clip(floor((lon + 180) * 60), 0, 21599)`` (the contract's 1-arc-minute geo id,
  computed in float64 from the *stored* coordinates).  With ``h = fmix64(cell XOR
  salt(TAG_CELL))`` the cell is hot when ``unit(h) < HOT_FRACTION`` (2 %); its effect is
  ``+/-(2 + (h & 1023) / 1024)``, positive when bit 10 of ``h`` is set.  Cold cells have no
  effect.  Nothing is tabulated: the effect is recomputed per row from the hash.
* ``regional``: value noise on the 1-degree lattice, bilinearly interpolated.  The lattice
  point ``(a, b)`` (``a = floor(lat + 90)`` in 0..180, ``b = floor(lon + 180) mod 360``) has
  value ``REGIONAL_AMPLITUDE * (2 * unit(fmix64((a * 360 + b) XOR salt(TAG_REGION))) - 1)``.
* ``device``: :data:`DEVICE_EFFECTS`.
* ``age``: :data:`AGE_EFFECTS` per bucket of :data:`AGE_BOUNDARIES` (the buckets of the
  shipped spec), :data:`AGE_MISSING_EFFECT` when null.
* ``income``: ``INCOME_SLOPE * clip((log(income) - INCOME_LOG_MEDIAN) / INCOME_LOG_SIGMA,
  -2.5, 2.5)``, :data:`INCOME_MISSING_EFFECT` when null.
* ``hour``: ``HOUR_AMPLITUDE * cos(2 * pi * (hour - 21) / 24)``.
* ``user``: the :data:`FREQUENT_USERS` most frequent users (Zipf rank below that) get
  ``USER_AMPLITUDE * (2 * unit(fmix64(user_id XOR salt(TAG_USER))) - 1)``; others nothing.

Determinism
-----------
Rows are produced in blocks of :data:`BLOCK_ROWS` rows; block ``b`` uses its own
``numpy.random.Generator`` seeded by ``SeedSequence(seed, spawn_key=(1, b))`` and the world by
``SeedSequence(seed, spawn_key=(0,))``.  Row ``r`` therefore depends on ``(seed, r)`` only:
it is the same whatever ``rows`` and ``row_group_size`` are (a shorter file is a prefix of a
longer one), and the same arguments give a byte-identical file for a given pyarrow version.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ._values import MAX_BATCH_ROWS, MAX_ROWS
from .errors import OutputError, shown, shown_path
from .files import atomic_output
from .hashing import fmix64 as _fmix64_int
from .hashing import fmix64_array

__all__ = [
    "generate",
    "SCHEMA",
    "DEVICES",
    "DEVICE_PROBABILITIES",
    "fmix64",
    "unit_interval",
    "salt",
    "arcminute_cell",
    "hot_cell_effect",
]

logger = logging.getLogger(__name__)

#: Version of the generative model (stored in the file's schema metadata).
MODEL_VERSION = 1

#: Rows per independently seeded block (row r lives in block r // BLOCK_ROWS).
BLOCK_ROWS = 1 << 16

#: Column names and Arrow types of the generated file, in order.
SCHEMA = pa.schema(
    [
        pa.field("latitude", pa.float64()),
        pa.field("longitude", pa.float64()),
        pa.field("device", pa.string()),
        pa.field("user_id", pa.int64()),
        pa.field("age", pa.float64()),
        pa.field("income", pa.float64()),
        pa.field("hour", pa.int64()),
        pa.field("label", pa.int8()),
    ]
)

# --- world (geography) -------------------------------------------------------------------
N_REGIONS = 40
N_CLUSTERS = 1200
CLUSTER_ZIPF_EXPONENT = 0.8
BACKGROUND_FRACTION = 0.10
HALO_FRACTION = 0.20
HALO_FACTOR = 3.0

# --- categorical / numeric columns -------------------------------------------------------
DEVICES = ("android", "ios", "desktop", "tablet", "other")
DEVICE_PROBABILITIES = (0.45, 0.28, 0.18, 0.06, 0.03)
AGE_NULL_FRACTION = 0.05
INCOME_NULL_FRACTION = 0.03
INCOME_LOG_MEDIAN = math.log(45_000.0)
INCOME_LOG_SIGMA = 0.7
#: Possible users; Zipf ranks are folded into [0, N_USERS).
N_USERS = 5_000_000
USER_ID_BITS = 24
USER_ZIPF_EXPONENT = 1.3
USER_ZIPF_SHIFT = 200.0
#: Relative frequency of each hour of the day (evening peak).
HOUR_WEIGHTS = tuple(1.0 + 0.6 * math.cos(2.0 * math.pi * (h - 20) / 24.0) for h in range(24))

# --- planted logistic model ----------------------------------------------------------------
BASE_LOGIT = -1.45
HOT_FRACTION = 0.02
REGIONAL_AMPLITUDE = 0.7
DEVICE_EFFECTS = {"android": 0.0, "ios": 0.35, "desktop": -0.25, "tablet": 0.1, "other": -0.6}
AGE_BOUNDARIES = (25.0, 35.0, 45.0, 55.0, 65.0)
AGE_EFFECTS = (-0.45, 0.0, 0.25, 0.4, 0.1, -0.35)
AGE_MISSING_EFFECT = 0.3
INCOME_SLOPE = 0.35
INCOME_MISSING_EFFECT = -0.4
HOUR_AMPLITUDE = 0.4
FREQUENT_USERS = 1000
USER_AMPLITUDE = 0.8

# --- hash salts: ASCII tags, big-endian ------------------------------------------------
TAG_CELL = int.from_bytes(b"cell\0\0\0\0", "big")
TAG_REGION = int.from_bytes(b"region\0\0", "big")
TAG_USER = int.from_bytes(b"user\0\0\0\0", "big")
TAG_USER_ID = int.from_bytes(b"userid\0\0", "big")

_MASK64 = (1 << 64) - 1
_S11 = np.uint64(11)
_N_LON_ARCMIN = 21600


# =========================================================================================
# Hash helpers (public so that tests and notebooks can re-derive the planted effects)
# =========================================================================================


def fmix64(x: np.ndarray | int) -> np.ndarray | int:
    """MurmurHash3's 64-bit finalizer, modulo ``2**64``.

    Parameters
    ----------
    x : numpy.ndarray of uint64 or int
        Values to mix.  A Python ``int`` is taken modulo ``2**64``.

    Returns
    -------
    numpy.ndarray of uint64 or int
        Same kind as *x* (a new array; *x* is not modified).
    """
    if isinstance(x, (int, np.integer)):
        return _fmix64_int(int(x))
    return fmix64_array(x)  # (it converts to uint64 once, in a copy)


def unit_interval(h: np.ndarray) -> np.ndarray:
    """Map uint64 hashes to float64 in ``[0, 1)``: ``(h >> 11) * 2**-53``.

    Parameters
    ----------
    h : numpy.ndarray of uint64

    Returns
    -------
    numpy.ndarray of float64
    """
    return (np.asarray(h, dtype=np.uint64) >> _S11).astype(np.float64) * (2.0**-53)


def salt(seed: int, tag: int) -> int:
    """Salt of one hashed effect: ``fmix64(seed XOR tag)``.

    Parameters
    ----------
    seed : int
        Generator seed, ``0 <= seed < 2**64``.
    tag : int
        One of :data:`TAG_CELL`, :data:`TAG_REGION`, :data:`TAG_USER`, :data:`TAG_USER_ID`.

    Returns
    -------
    int
        Unsigned 64-bit salt.
    """
    return fmix64((seed ^ tag) & _MASK64)


def arcminute_cell(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Contract v1 geo id at 1 arc-minute: ``i * 21600 + j`` (int64).

    Parameters
    ----------
    lat, lon : numpy.ndarray of float64
        Coordinates in range (no NaN).

    Returns
    -------
    numpy.ndarray of int64
    """
    i = np.clip(np.floor((lat + 90.0) * 60.0), 0, 10799).astype(np.int64)
    j = np.clip(np.floor((lon + 180.0) * 60.0), 0, _N_LON_ARCMIN - 1).astype(np.int64)
    return i * _N_LON_ARCMIN + j


def hot_cell_effect(cell: np.ndarray, seed: int) -> np.ndarray:
    """Planted logit effect of 1-arc-minute cells (0.0 for cold cells).

    Parameters
    ----------
    cell : numpy.ndarray of int64
        Cell ids from :func:`arcminute_cell`.
    seed : int
        Generator seed.

    Returns
    -------
    numpy.ndarray of float64
        ``+/-(2 + (h & 1023) / 1024)`` where ``unit(h) < HOT_FRACTION``, else 0.
    """
    h = fmix64(np.asarray(cell).astype(np.uint64) ^ np.uint64(salt(seed, TAG_CELL)))
    hot = unit_interval(h) < HOT_FRACTION
    magnitude = 2.0 + (h & np.uint64(1023)).astype(np.float64) / 1024.0
    sign = np.where((h >> np.uint64(10)) & np.uint64(1), 1.0, -1.0)
    return np.where(hot, sign * magnitude, 0.0)


# =========================================================================================
# World and per-block generation
# =========================================================================================


@dataclass(frozen=True)
class _World:
    """Seed-derived constants shared by every block."""

    seed: int
    center_lat: np.ndarray  # (N_CLUSTERS,) degrees
    center_lon: np.ndarray  # (N_CLUSTERS,) degrees
    sigma: np.ndarray  # (N_CLUSTERS,) degrees (latitude direction)
    lon_stretch: np.ndarray  # (N_CLUSTERS,) 1 / cos(latitude), capped
    component_cdf: np.ndarray  # (N_CLUSTERS + 1,) cumulative probabilities; last = background
    salt_region: np.uint64
    salt_user: np.uint64
    salt_user_id: np.uint64


def _uniform_sphere_lat(
    rng: np.random.Generator, n: int, lo_deg: float, hi_deg: float
) -> np.ndarray:
    """Latitudes uniform on the sphere between *lo_deg* and *hi_deg*."""
    u = rng.uniform(math.sin(math.radians(lo_deg)), math.sin(math.radians(hi_deg)), n)
    return np.degrees(np.arcsin(u))


def _make_world(seed: int) -> _World:
    """Draw the population clusters for *seed* (a few kilobytes; O(N_CLUSTERS))."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    # Mega-regions ("continents"), then clusters scattered around them.
    region_lat = _uniform_sphere_lat(rng, N_REGIONS, -45.0, 65.0)
    region_lon = rng.uniform(-180.0, 180.0, N_REGIONS)
    region_spread = rng.uniform(4.0, 12.0, N_REGIONS)
    region_weight = 1.0 / np.arange(1, N_REGIONS + 1) ** 0.7
    region = rng.choice(N_REGIONS, size=N_CLUSTERS, p=region_weight / region_weight.sum())
    spread = region_spread[region]
    center_lat = region_lat[region] + rng.normal(0.0, 1.0, N_CLUSTERS) * spread
    center_lat = np.clip(center_lat, -60.0, 75.0)
    stretch_region = 1.0 / np.maximum(np.cos(np.radians(region_lat[region])), 0.2)
    center_lon = region_lon[region] + rng.normal(0.0, 1.0, N_CLUSTERS) * spread * stretch_region
    center_lon = (center_lon + 180.0) % 360.0 - 180.0

    # Spreads: city (arc-minutes), metropolitan, regional (degrees); log-uniform within each.
    kind = rng.choice(3, size=N_CLUSTERS, p=[0.70, 0.25, 0.05])
    lo = np.array([1.5 / 60.0, 20.0 / 60.0, 1.5])[kind]
    hi = np.array([20.0 / 60.0, 90.0 / 60.0, 4.0])[kind]
    sigma = np.exp(rng.uniform(np.log(lo), np.log(hi)))

    # Zipf weights over a random order of the clusters, then the background component.
    weight = np.empty(N_CLUSTERS)
    zipf = 1.0 / np.arange(1, N_CLUSTERS + 1) ** CLUSTER_ZIPF_EXPONENT
    weight[rng.permutation(N_CLUSTERS)] = zipf
    probs = np.append(weight / weight.sum() * (1.0 - BACKGROUND_FRACTION), BACKGROUND_FRACTION)
    cdf = np.cumsum(probs)
    cdf[-1] = 1.0
    return _World(
        seed=seed,
        center_lat=center_lat,
        center_lon=center_lon,
        sigma=sigma,
        lon_stretch=1.0 / np.maximum(np.cos(np.radians(center_lat)), 0.1),
        component_cdf=cdf,
        salt_region=np.uint64(salt(seed, TAG_REGION)),
        salt_user=np.uint64(salt(seed, TAG_USER)),
        salt_user_id=np.uint64(salt(seed, TAG_USER_ID)),
    )


def _regional_effect(world: _World, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Bilinear value noise on the 1-degree lattice (smooth, amplitude REGIONAL_AMPLITUDE)."""
    y = lat + 90.0
    x = lon + 180.0
    a0 = np.minimum(np.floor(y), 179.0)
    b0 = np.floor(x)
    fy = y - a0
    fx = x - b0
    a0 = a0.astype(np.int64)
    b0 = b0.astype(np.int64)

    def corner(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        key = (a * 360 + b % 360).astype(np.uint64)
        return REGIONAL_AMPLITUDE * (2.0 * unit_interval(fmix64(key ^ world.salt_region)) - 1.0)

    south = corner(a0, b0) * (1.0 - fx) + corner(a0, b0 + 1) * fx
    north = corner(a0 + 1, b0) * (1.0 - fx) + corner(a0 + 1, b0 + 1) * fx
    return south * (1.0 - fy) + north * fy


def _scramble_user(rank: np.ndarray, salt_user_id: np.uint64) -> np.ndarray:
    """Bijective mix of ranks in [0, 2**24) so that ids look random (int64)."""
    mask = np.uint64((1 << USER_ID_BITS) - 1)
    x = rank.astype(np.uint64) ^ (salt_user_id & mask)
    # Each step is a bijection of [0, 2**24): odd multiplier mod 2**24, xor-shift.
    # Products stay below 2**56, so uint64 never wraps.
    x = (x * np.uint64(0x9E3779B1)) & mask
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(0x85EBCA6B)) & mask
    x ^= x >> np.uint64(11)
    return x.astype(np.int64)


def _generate_block(world: _World, block: int) -> dict[str, np.ndarray]:
    """Generate the BLOCK_ROWS rows of block *block* (numpy arrays + null masks)."""
    n = BLOCK_ROWS
    rng = np.random.default_rng(np.random.SeedSequence(world.seed, spawn_key=(1, block)))

    # --- coordinates: cluster (or background) per row --------------------------------
    comp = np.searchsorted(world.component_cdf, rng.random(n), side="right")
    np.minimum(comp, N_CLUSTERS, out=comp)
    background = comp == N_CLUSTERS
    c = np.where(background, 0, comp)
    scale = world.sigma[c] * np.where(rng.random(n) < HALO_FRACTION, HALO_FACTOR, 1.0)
    lat = world.center_lat[c] + rng.standard_normal(n) * scale
    lon = world.center_lon[c] + rng.standard_normal(n) * scale * world.lon_stretch[c]
    n_bg = int(background.sum())
    lat[background] = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n_bg)))
    lon[background] = rng.uniform(-180.0, 180.0, n_bg)
    lon = (lon + 180.0) % 360.0 - 180.0  # wrap; may yield exactly 180.0 by rounding: in range
    lat = np.clip(lat, -90.0, 90.0)
    lat = np.round(lat, 6)
    lon = np.round(lon, 6)

    # --- other columns -----------------------------------------------------------------
    device = np.searchsorted(np.cumsum(DEVICE_PROBABILITIES), rng.random(n), side="right")
    device = np.minimum(device, len(DEVICES) - 1).astype(np.int8)

    # Zipf-Mandelbrot ranks by Pareto inversion: rank = floor(q * (u**(-1/(a-1)) - 1)).
    u = 1.0 - rng.random(n)  # (0, 1]
    raw = np.floor(USER_ZIPF_SHIFT * (u ** (-1.0 / (USER_ZIPF_EXPONENT - 1.0)) - 1.0))
    rank = np.minimum(raw, 2.0**62).astype(np.int64) % N_USERS
    user_id = _scramble_user(rank, world.salt_user_id)

    age = np.floor(18.0 + 73.0 * rng.beta(2.0, 3.5, n))  # whole years in [18, 90]
    age_null = rng.random(n) < AGE_NULL_FRACTION
    # Income grows mildly with age up to 55 (uses the age even where it will be null).
    log_income = (
        INCOME_LOG_MEDIAN
        + 0.015 * (np.minimum(age, 55.0) - 40.0)
        + INCOME_LOG_SIGMA * rng.standard_normal(n)
    )
    income = np.maximum(np.round(np.exp(log_income), -2), 100.0)
    income_null = rng.random(n) < INCOME_NULL_FRACTION

    hour_p = np.asarray(HOUR_WEIGHTS) / sum(HOUR_WEIGHTS)
    hour = np.searchsorted(np.cumsum(hour_p), rng.random(n), side="right")
    hour = np.minimum(hour, 23).astype(np.int64)

    # --- planted logistic model ----------------------------------------------------------
    logit = np.full(n, BASE_LOGIT)
    logit += hot_cell_effect(arcminute_cell(lat, lon), world.seed)
    logit += _regional_effect(world, lat, lon)
    logit += np.array([DEVICE_EFFECTS[d] for d in DEVICES])[device]
    age_effect = np.asarray(AGE_EFFECTS)[np.searchsorted(AGE_BOUNDARIES, age, side="right")]
    logit += np.where(age_null, AGE_MISSING_EFFECT, age_effect)
    z = np.clip((np.log(income) - INCOME_LOG_MEDIAN) / INCOME_LOG_SIGMA, -2.5, 2.5)
    logit += np.where(income_null, INCOME_MISSING_EFFECT, INCOME_SLOPE * z)
    logit += HOUR_AMPLITUDE * np.cos(2.0 * np.pi * (hour - 21) / 24.0)
    user_hash = fmix64(user_id.astype(np.uint64) ^ world.salt_user)
    user_effect = USER_AMPLITUDE * (2.0 * unit_interval(user_hash) - 1.0)
    logit += np.where(rank < FREQUENT_USERS, user_effect, 0.0)
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)

    return {
        "latitude": lat,
        "longitude": lon,
        "device": device,
        "user_id": user_id,
        "age": age,
        "age_null": age_null,
        "income": income,
        "income_null": income_null,
        "hour": hour,
        "label": label,
    }


def _rows(
    world: _World, start: int, stop: int, cache: dict[int, dict[str, np.ndarray]]
) -> pa.Table:
    """Rows ``[start, stop)`` as an Arrow table, assembled from blocks.

    *cache* keeps the last block generated, so that a block straddling two row groups is
    generated once.
    """
    parts: list[dict[str, np.ndarray]] = []
    for b in range(start // BLOCK_ROWS, (stop - 1) // BLOCK_ROWS + 1):
        if b not in cache:
            cache.clear()
            cache[b] = _generate_block(world, b)
        lo = max(start - b * BLOCK_ROWS, 0)
        hi = min(stop - b * BLOCK_ROWS, BLOCK_ROWS)
        parts.append({k: v[lo:hi] for k, v in cache[b].items()})
    col = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    device = pa.DictionaryArray.from_arrays(
        pa.array(col["device"], pa.int8()), pa.array(DEVICES, pa.string())
    )
    arrays = [
        pa.array(col["latitude"], pa.float64()),
        pa.array(col["longitude"], pa.float64()),
        device.dictionary_decode(),
        pa.array(col["user_id"], pa.int64()),
        pa.array(col["age"], pa.float64(), mask=col["age_null"]),
        pa.array(col["income"], pa.float64(), mask=col["income_null"]),
        pa.array(col["hour"], pa.int64()),
        pa.array(col["label"], pa.int8()),
    ]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


# =========================================================================================
# Public entry point
# =========================================================================================

#: The largest seed (a world is seeded with 64 bits).
MAX_SEED = 2**64 - 1


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """Validate an integer argument (bool rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"generate: {name} must be an integer, got {type(value).__name__} {shown(value)}"
        )
    v = int(value)
    if v < minimum or (maximum is not None and v > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"generate: {name} must be {bound}, got {shown(v)}")
    return v


def generate(
    out: str | os.PathLike[str],
    rows: int = 1_000_000,
    seed: int = 0,
    row_group_size: int = 500_000,
    *,
    first_row: int = 0,
    overwrite: bool = False,
    progress: Callable[[int], object] | None = None,
) -> Path:
    """Write a synthetic geo event log with a planted sparse logistic model to Parquet.

    The file is generated and written one row group at a time (memory is bounded by
    *row_group_size*), into a fresh temporary file in the same folder, then renamed to *out*.
    See the module docstring for the columns and the planted model.

    Parameters
    ----------
    out : str or os.PathLike
        Destination Parquet file.  Missing parent folders are created.
    rows : int, default 1_000_000
        Number of rows, ``1 <= rows <= 2**63 - 1`` (Parquet counts rows in int64), with
        ``first_row + rows`` in that range too.
    seed : int, default 0
        Seed of the world and of every row, ``0 <= seed < 2**64``.
    row_group_size : int, default 500_000
        Rows per Parquet row group, ``1 <= row_group_size <= 2**31 - 1`` (a row group is made
        as one Arrow table).  Does not change the rows' content.
    first_row : int, default 0
        Global number of the first row written: ``first_row=N`` continues the same world
        and planted model after a file of N rows, which makes a held-out test set.
    overwrite : bool, default False
        Replace *out* if it exists.
    progress : callable, optional
        Called as ``progress(rows_done)`` after each row group is written.

    Returns
    -------
    pathlib.Path
        The path written (*out*).

    Raises
    ------
    ValueError
        If an argument is out of range or of the wrong type.
    FileExistsError
        If *out* exists and *overwrite* is false.
    IsADirectoryError
        If *out* is a directory.

    Notes
    -----
    Same ``(rows, seed, row_group_size)`` gives a byte-identical file (for a given pyarrow
    version).  Row ``r`` depends only on ``(seed, r)``.

    Examples
    --------
    >>> from sparsecross.generate import generate
    >>> path = generate("events.parquet", rows=100_000, seed=1)  # doctest: +SKIP
    """
    # row numbers are int64 (Parquet's row counts); a row group is one Arrow table
    rows = _check_int("rows", rows, 1, MAX_ROWS)
    seed = _check_int("seed", seed, 0, MAX_SEED)
    row_group_size = _check_int("row_group_size", row_group_size, 1, MAX_BATCH_ROWS)
    first_row = _check_int("first_row", first_row, 0, MAX_ROWS - 1)
    if first_row + rows > MAX_ROWS:
        raise ValueError(f"generate: first_row + rows must be at most {MAX_ROWS}, got {shown(first_row + rows)}")
    if progress is not None and not callable(progress):
        raise ValueError(
            f"generate: progress must be callable or None, got {type(progress).__name__}"
        )

    path = Path(os.fspath(out))
    if path.is_dir():
        raise IsADirectoryError(f"generate: output {shown_path(path)} is a directory")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"generate: output {shown_path(path)} exists (pass overwrite=True to replace it)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)

    metadata = {
        b"sparsecross.generate": json.dumps(
            {"model_version": MODEL_VERSION, "rows": rows, "seed": seed, "first_row": first_row},
            sort_keys=True,
        ).encode()
    }
    schema = SCHEMA.with_metadata(metadata)
    world = _make_world(seed)
    cache: dict[int, dict[str, np.ndarray]] = {}
    logger.debug(
        "generating %d rows (seed=%d, row_group_size=%d) into %s", rows, seed, row_group_size, path
    )
    with atomic_output(path, "generated data", OutputError) as fh, pq.ParquetWriter(
            fh,
            schema,
            compression="zstd",
            # Dictionary pages only where they pay off; high-cardinality floats skip them.
            use_dictionary=["device", "age", "hour", "label"],
    ) as writer:
        end = first_row + rows
        for start in range(first_row, end, row_group_size):
            stop = min(start + row_group_size, end)
            table = _rows(world, start, stop, cache)
            writer.write_table(table, row_group_size=stop - start)
            if progress is not None:
                progress(stop - first_row)
    logger.debug("wrote %s", path)
    return path
