"""Feature kinds: one module per kind family, and the registry :data:`KINDS`.

Adding a kind is one module defining a :class:`~sparsecross.kinds._base.Kind` and one entry
here; the spec parser (keys, validation, expansion into several features, the canonical dict),
the layout, the schema check, the schema roles, the featurizer, settings resolved from data,
the name recorder (values of hashed kinds) and the readable names all ask the kind
(``tests/test_kind_plugin.py`` registers two kinds defined in the test and runs them through
parse, featurize, train, names and ``inspect``).
"""

from __future__ import annotations

from ._base import Ctx, Kind
from .bucket import BUCKET
from .categorical import CATEGORICAL
from .geo import GEO, LAT, LON, grid_of
from .numeric import NUMERIC
from .time import TIME

__all__ = ["KINDS", "SHIPPED", "Kind", "Ctx", "grid_of"]

#: The kinds this package ships, in the order the contract lists them (their featurizers are
#: checked against the reference featurizer by the tests).
SHIPPED: tuple[Kind, ...] = (GEO, LAT, LON, BUCKET, CATEGORICAL, NUMERIC, TIME)

#: ``kind =`` value -> its :class:`Kind`.
KINDS: dict[str, Kind] = {k.name: k for k in SHIPPED}
