"""Golden featurize cases of the issue-11 kinds (used by ``make_golden.py``): numeric
transforms and clip, time parts of formatted strings in several time zones, categorical lists
(strings and integers), a geo pyramid with bands, and crosses with one, two and three list
components, including lists beyond the crossing cap.  Rows are plain JSON values; times are
strings parsed with the feature's ``format``."""

from __future__ import annotations

from typing import Any

NUMERIC_SPEC = """
[label]
column = "y"

[hashing]
bits = 6

[[features]]
name = "raw"
kind = "numeric"
column = "x"

[[features]]
name = "log"
kind = "numeric"
column = "x"
transform = "log1p"
clip = [0.0, 1000.0]

[[features]]
name = "slog"
kind = "numeric"
column = "z"
transform = "signed_log1p"
missing = "skip"

[[features]]
name = "clipped"
kind = "numeric"
column = "z"
clip = [-1.5, 2.25]

[[features]]
name = "b"
kind = "bucket"
column = "x"
boundaries = [0.0, 10.0]
"""

NUMERIC_ROWS = [
    {"x": 0.0, "z": -0.0, "y": 1},
    {"x": 3.25, "z": -7.5, "y": 0},
    {"x": 123456.789, "z": 1e30, "y": 1},
    {"x": -5.0, "z": None, "y": 0},
    {"x": None, "z": 2.25, "y": 1},
    {"x": 1e-9, "z": -1e-9, "y": 0},
]

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

TIME_SPEC = f"""
[label]
column = "y"

[hashing]
bits = 8
seed = 11

[[features]]
name = "hour"
kind = "time"
column = "t"
part = "hour"
format = "{TIME_FORMAT}"

[[features]]
name = "hour_paris"
kind = "time"
column = "t"
part = "hour"
format = "{TIME_FORMAT}"
timezone = "Europe/Paris"

[[features]]
name = "dow_ny"
kind = "time"
column = "t"
part = "dow"
format = "{TIME_FORMAT}"
timezone = "America/New_York"

[[features]]
name = "minute_kolkata"
kind = "time"
column = "t"
part = "minute"
format = "{TIME_FORMAT}"
timezone = "Asia/Kolkata"
missing = "skip"

[[features]]
name = "month"
kind = "time"
column = "t"
part = "month"
format = "{TIME_FORMAT}"
timezone = "Pacific/Auckland"

[[features]]
name = "doy"
kind = "time"
column = "d"
part = "dayofyear"
format = "%d/%m/%Y"
invalid = "missing"

[[features]]
name = "year"
kind = "time"
column = "d"
part = "year"
format = "%d/%m/%Y"
years = [1999, 2030]
invalid = "missing"

[[crosses]]
features = ["dow_ny", "hour_paris"]

[[crosses]]
features = ["month", "year"]
mode = "hashed"
"""

TIME_ROWS = [
    {"t": "2024-03-31 00:59:59", "d": "31/12/2024", "y": 1},  # Paris: the hour before the DST jump
    {"t": "2024-03-31 01:00:00", "d": "29/02/2024", "y": 0},  # Paris: 03:00 after the jump
    {"t": "2024-10-27 00:30:00", "d": "01/01/1999", "y": 1},  # Paris: 02:30 CEST, the repeated hour
    {"t": "2024-10-27 01:30:00", "d": "not a date", "y": 0},  # ... and 02:30 CET; unparsable date
    {"t": "1999-12-31 23:59:00", "d": "15/06/2031", "y": 1},  # Auckland: January 2000; year out of range
    {"t": "2024-11-03 05:59:00", "d": None, "y": 0},          # New York: Sunday 01:59 EDT
    {"t": None, "d": "01/01/2030", "y": 1},
    {"t": "2023-01-01 18:29:00", "d": "31/12/2023", "y": 0},  # Kolkata: 23:59 (+05:30)
]

LIST_SPEC = """
[label]
column = "y"

[hashing]
bits = 10
seed = 5

[[features]]
name = "tags"
kind = "categorical"
column = "tags"

[[features]]
name = "ids"
kind = "categorical"
column = "ids"
missing = "skip"

[[features]]
name = "plain"
kind = "categorical"
column = "tag"
"""

LIST_ROWS = [
    {"tags": ["sport", "news", "sport"], "ids": [3, 1, 3, 2], "tag": "sport", "y": 1},
    {"tags": [], "ids": [], "tag": None, "y": 0},
    {"tags": None, "ids": None, "tag": "news", "y": 1},
    {"tags": [None, "", "\u00e9t\u00e9"], "ids": [None, -1, 0], "tag": "", "y": 0},
    {"tags": [None], "ids": [9223372036854775807], "tag": "\u00e9t\u00e9", "y": 1},
]

PYRAMID_SPEC = """
[label]
column = "y"

[hashing]
bits = 8

[[features]]
name = "pyr"
kind = "geo"
lat = "lat"
lon = "lon"
resolution_arcmin = [600, 60, 1.5]
bands = true
invalid = "missing"

[[features]]
name = "ocean"
kind = "categorical"
column = "ocean"

[[crosses]]
features = ["pyr@60", "ocean"]

[[crosses]]
features = ["pyr.lat@600", "pyr.lon@1.5"]
"""

PYRAMID_ROWS = [
    {"lat": 37.7749, "lon": -122.4194, "ocean": "NEAR BAY", "y": 1},
    {"lat": -90.0, "lon": -180.0, "ocean": "INLAND", "y": 0},
    {"lat": 90.0, "lon": 180.0, "ocean": None, "y": 1},
    {"lat": 0.0, "lon": 0.0, "ocean": "<1H OCEAN", "y": 0},
    {"lat": None, "lon": 12.5, "ocean": "ISLAND", "y": 1},
    {"lat": 91.0, "lon": 10.0, "ocean": "INLAND", "y": 0},  # invalid -> missing
    {"lat": -33.8688, "lon": 151.2093, "ocean": "NEAR OCEAN", "y": 1},
]

LIST_CROSS_SPEC = """
[label]
column = "y"

[hashing]
bits = 12
seed = 9

[[features]]
name = "tags"
kind = "categorical"
column = "tags"
standalone = false

[[features]]
name = "genre"
kind = "categorical"
column = "genre"
missing = "skip"

[[features]]
name = "device"
kind = "categorical"
column = "device"

[[features]]
name = "rooms"
kind = "bucket"
column = "rooms"
boundaries = [2.0, 4.0]
standalone = false

[[crosses]]
features = ["tags", "device"]

[[crosses]]
features = ["rooms", "tags"]
mode = "hashed"

[[crosses]]
features = ["tags", "genre"]

[[crosses]]
features = ["genre", "tags", "rooms"]
"""


def _long(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


LIST_CROSS_ROWS: list[dict[str, Any]] = [
    {"tags": ["a", "b", "a"], "genre": ["x", "y"], "device": "ios", "rooms": 3.0, "y": 1},
    {"tags": [], "genre": ["x"], "device": None, "rooms": None, "y": 0},
    {"tags": ["a"], "genre": None, "device": "web", "rooms": 1.0, "y": 1},
    {"tags": [None, "c"], "genre": [None], "device": "ios", "rooms": 5.0, "y": 0},
    # beyond the cap: 70 distinct tags alone, and against 70 genres (the pairs of the first 8)
    {"tags": _long("t", 70), "genre": ["x"], "device": "tv", "rooms": 2.0, "y": 1},
    {"tags": _long("t", 70) + ["t3"], "genre": _long("g", 70), "device": "tv", "rooms": 4.0, "y": 0},
    {"tags": ["a", "b", "c"], "genre": _long("g", 30), "device": "web", "rooms": 0.5, "y": 1},
]


def kinds_cases(make: Any) -> list[dict[str, Any]]:
    """The cases, built by ``make(case_id, spec_toml, rows)`` (make_golden's _featurize_case)."""
    return [
        make("numeric_transforms_clip", NUMERIC_SPEC, NUMERIC_ROWS),
        make("time_parts_timezones_formats", TIME_SPEC, TIME_ROWS),
        make("categorical_lists", LIST_SPEC, LIST_ROWS),
        make("geo_pyramid_bands", PYRAMID_SPEC, PYRAMID_ROWS),
        make("list_crosses_one_two_three_components", LIST_CROSS_SPEC, LIST_CROSS_ROWS),
    ]
