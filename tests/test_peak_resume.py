"""``state_bytes_peak`` of an early-stopping run resumed from a checkpoint written mid-epoch,
just before the live state grows while the best epoch's copy is held: the growth's transient
plus the copy must count as in the uninterrupted run (the checkpoint once gave the loop's peak,
copy included, back to the live state as its own, so the later growth was never seen as new)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import sparsecross
from sparsecross import epochs
from tests.test_admission import ARGS, SPEC, _arrays, _save, many  # noqa: F401  (many: the fixture)

STEP = sys.modules["sparsecross.train"].train_batch  # the real step, before any patch
BATCH_ROWS = ARGS["batch_rows"]
KW = dict(**{**ARGS, "epochs": 3}, admit_after=2, holdout=0.2, early_stop=1, checkpoint_every=BATCH_ROWS)


class _Stop(Exception):
    pass


def _watched(monkeypatch, stop_at: int | None) -> list[int]:
    """Patch the step: epoch 1 stays the best; record the table's capacity after each batch;
    raise :class:`_Stop` before call ``stop_at`` (None: never)."""
    train_module = sys.modules["sparsecross.train"]
    monkeypatch.setattr(epochs, "_best_epoch", lambda history: 1)
    step = STEP
    caps: list[int] = []

    def watched(state, *a, **k):
        if len(caps) == stop_at:
            raise _Stop
        step(state, *a, **k)
        caps.append(state.capacity)

    monkeypatch.setattr(train_module, "train_batch", watched)
    return caps


def _as_older_version(folder: Path) -> None:
    """Rewrite the checkpoint of ``folder`` as a version before ``live_bytes_peak`` wrote it."""
    arrays = _arrays((folder / "state.npz").read_bytes())
    meta = json.loads(arrays["meta"].tobytes())
    del meta["live_bytes_peak"]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    _save(folder, arrays)


@pytest.mark.parametrize("filter_mb,older", [(1.0, False), (None, False), (1.0, True)])
def test_resume_before_a_growth_under_early_stop_keeps_the_peak(many, monkeypatch, tmp_path, filter_mb,  # noqa: F811
                                                                older):
    """``older``: a checkpoint without ``live_bytes_peak`` (the run's peak alone, copy
    included, which is not the live state's) resumes to the same figure."""
    kw = KW if filter_mb is None else {**KW, "admit_filter_mb": filter_mb}
    caps = _watched(monkeypatch, None)
    whole = sparsecross.train(many, SPEC, **kw, checkpoint=tmp_path / "whole")
    per_epoch = -(-4000 // BATCH_ROWS)
    grown = [i for i in range(1, len(caps)) if caps[i] != caps[i - 1] and i >= per_epoch]
    assert grown, "the live state must grow after epoch 1's copy is made"
    _watched(monkeypatch, grown[0])
    with pytest.raises(_Stop):  # interrupted just before that growth; the checkpoint is of the batch before
        sparsecross.train(many, SPEC, **kw, checkpoint=tmp_path / "ck")
    if older:
        _as_older_version(tmp_path / "ck")
    _watched(monkeypatch, None)
    resumed = sparsecross.train(many, SPEC, **kw, checkpoint=tmp_path / "ck")
    assert resumed.stats["best_epoch"] == whole.stats["best_epoch"] == 1
    assert resumed.run["state_bytes_peak"] == whole.run["state_bytes_peak"]


def test_older_checkpoint_without_a_copy_restores_the_live_peak(many, monkeypatch, tmp_path):  # noqa: F811
    """Without early stopping the run's peak is the live state's own: a checkpoint without
    ``live_bytes_peak`` gives it back to the resumed state (interrupted after the last growth)."""
    kw = {k: v for k, v in KW.items() if k != "early_stop"}
    caps = _watched(monkeypatch, None)
    whole, whole_state = sparsecross.train(many, SPEC, **kw, return_state=True)
    last = max(i for i in range(1, len(caps)) if caps[i] != caps[i - 1])
    _watched(monkeypatch, last + 1)
    with pytest.raises(_Stop):
        sparsecross.train(many, SPEC, **kw, checkpoint=tmp_path / "ck")
    _as_older_version(tmp_path / "ck")
    _watched(monkeypatch, None)
    resumed, state = sparsecross.train(many, SPEC, **kw, checkpoint=tmp_path / "ck", return_state=True)
    assert state.bytes_peak == whole_state.bytes_peak == whole.run["state_bytes_peak"] > state.nbytes
    assert resumed.run["state_bytes_peak"] == whole.run["state_bytes_peak"]
