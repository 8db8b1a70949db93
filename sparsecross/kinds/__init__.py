"""Feature kinds: one module per kind family, and the registry :data:`KINDS`.

Adding a kind is one module defining a :class:`~sparsecross.kinds._base.Kind` and one entry
here; the spec parser, the layout, the schema check, the schema roles, the featurizer and the
readable names all ask the kind.
"""

from __future__ import annotations

from ._base import Ctx, Kind
from .bucket import BUCKET
from .categorical import CATEGORICAL
from .geo import GEO, LAT, LON, grid_of
from .numeric import NUMERIC
from .time import TIME

__all__ = ["KINDS", "Kind", "Ctx", "grid_of"]

#: ``kind =`` value -> its :class:`Kind`, in the order the contract lists them.
KINDS: dict[str, Kind] = {k.name: k for k in (GEO, LAT, LON, BUCKET, CATEGORICAL, NUMERIC, TIME)}
