"""Fuzz of the loaders of untrusted checkpoints: random bytes flipped, cut, inserted or
overwritten in each member of a genuine checkpoint folder (a float state, a 16-bit state, a
run with admission, early stopping's best state) and of a state saved by ``FTRLState.save``.
Loading either succeeds or raises :class:`~sparsecross.errors.CheckpointError`, never another
exception type.

Each case is seeded: ``cases(seed, n)`` gives the same mutations every run.  The suite runs
1,000 cases (a few seconds); the ``slow`` campaign 50,000.

A member is mutated inside a rebuilt archive (stored, with a correct CRC, so that the mutation
reaches NumPy's header parser and the checks of the arrays) or in the file itself (where the
zip structure and its CRCs meet it first).
"""

from __future__ import annotations

import io
import random
import shutil
import tempfile
import zipfile
from pathlib import Path

import pytest

import sparsecross
from sparsecross import CheckpointError, FTRLState, parse_spec

ROWS = 600
SPEC = parse_spec({
    "version": 1,
    "label": {"column": "label"},
    "hashing": {"bits": 12, "seed": 0},
    "features": [
        {"name": "device", "kind": "categorical", "column": "device"},
        {"name": "age", "kind": "bucket", "column": "age", "boundaries": [25.0, 35.0, 45.0, 55.0, 65.0]},
    ],
    "crosses": [{"features": ["device", "age"]}],
})
EVERY = 200  # rows between checkpoints
#: The runs whose checkpoints are fuzzed, by name: train()'s arguments.
RUNS = {
    "float": {"epochs": 2, "batch_rows": 100},
    "state16": {"epochs": 2, "batch_rows": 100, "state_bits": 16},
    "admission": {"epochs": 2, "batch_rows": 100, "admit_after": 2},
    "best": {"epochs": 3, "batch_rows": 100, "holdout": 0.25, "early_stop": 2},
}
#: Characters that NumPy's header parser (tokenize, ast.literal_eval) reacts to.
TRICKY = b"\n\r\t '\"(){}[],:#\\L0123456789-<>|uifc\x00\x80\xff"


class _Stop(Exception):
    pass


def _interrupted(data: Path, folder: Path, args: dict, saves: int) -> None:
    """Run ``train`` with a checkpoint in ``folder`` and stop it after its ``saves``-th save."""
    orig = FTRLState.save
    done = []

    def save(self, path, meta):
        orig(self, path, meta)
        done.append(path)
        if len(done) == saves:
            raise _Stop

    mp = pytest.MonkeyPatch()
    mp.setattr(FTRLState, "save", save)
    try:
        sparsecross.train(data, SPEC, checkpoint=folder, checkpoint_every=EVERY, **args)
    except _Stop:
        pass
    finally:
        mp.undo()


def build(root: Path) -> dict[str, Path]:
    """Genuine files to fuzz under ``root``: the data, a checkpoint folder per run of
    :data:`RUNS` (stopped mid-run; ``best`` after its best state was written) and a state saved
    by ``FTRLState.save`` (``saved/state.npz``)."""
    data = sparsecross.generate(root / "data.parquet", rows=ROWS, seed=3, row_group_size=200)
    out = {"data": data}
    for name, args in RUNS.items():
        folder = root / name
        _interrupted(data, folder, args, saves=7 if name == "best" else 2)
        out[name] = folder
    assert list(out["best"].glob("best-*.npz")), "the early-stopping run wrote no best state"
    _, state = sparsecross.train(data, SPEC, epochs=1, return_state=True)
    (root / "saved").mkdir()
    state.save(root / "saved" / "state.npz", {"note": "saved"})
    out["saved"] = root / "saved" / "state.npz"
    return out


def _mutate(raw: bytes, rng: random.Random, start: int = 0, end: int | None = None) -> bytes:
    """``raw`` with one to three random changes: a byte flipped or set to a tricky character,
    a cut, an insertion or an overwritten span; mostly (80 %) at ``start:end`` (a member's
    ``.npy`` header, an archive's central directory)."""
    b = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        lo, hi = (start, min(len(b), len(b) if end is None else end)) if rng.random() < 0.8 else (0, len(b))
        pos = rng.randint(min(lo, hi), hi)
        op = rng.choice(["flip", "tricky", "cut", "insert", "overwrite"])
        if op == "flip" and pos < len(b):
            b[pos] ^= 1 << rng.randrange(8)
        elif op == "tricky" and pos < len(b):
            b[pos] = rng.choice(TRICKY)
        elif op == "cut":
            del b[pos:pos + (len(b) if rng.random() < 0.3 else rng.randint(1, 8))]
        elif op == "insert":
            b[pos:pos] = bytes(rng.choice(TRICKY) if rng.random() < 0.5 else rng.randrange(256)
                               for _ in range(rng.randint(1, 8)))
        elif op == "overwrite":
            n = rng.randint(1, 16)
            b[pos:pos + n] = bytes(rng.randrange(256) for _ in range(n))
    return bytes(b)


def _members(raw: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def _rezip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # stored, as np.savez writes
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def mutated(raw: bytes, rng: random.Random) -> tuple[str, bytes]:
    """A description of the mutation and the mutated file: one member's bytes, half the time
    mostly its header (the archive rebuilt around it), or the whole file's, half the time mostly
    its central directory."""
    members = _members(raw)
    if rng.random() < 0.75:
        i = rng.randrange(len(members))
        name, data = members[i]
        header = rng.random() < 0.5
        members[i] = (name, _mutate(data, rng, 0, 128 if header else None))
        return f"member {name}" + (" header" if header else ""), _rezip(members)
    directory = rng.random() < 0.5
    return "file" + (" directory" if directory else ""), _mutate(raw, rng, raw.find(b"PK\x01\x02") if directory else 0)


def load(kind: str, files: dict[str, Path], folder: Path) -> object:
    """Load the mutated copy in ``folder`` as its kind is loaded: resume the run from the
    checkpoint folder, or ``FTRLState.load`` the saved state."""
    if kind == "saved":
        return FTRLState.load(folder / "state.npz")
    return sparsecross.train(files["data"], SPEC, checkpoint=folder, checkpoint_every=EVERY, **RUNS[kind])


def cases(seed: int, n: int, files: dict[str, Path]):
    """``n`` seeded cases: (kind, file name, mutation, folder holding the mutated copy)."""
    rng = random.Random(seed)
    kinds = [*RUNS, "saved"]
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            kind = kinds[i % len(kinds)]
            src = files[kind]
            folder = Path(tmp) / f"case{i}"
            if kind == "saved":
                folder.mkdir()
                target = folder / "state.npz"
                shutil.copyfile(src, target)
            else:
                shutil.copytree(src, folder)
                names = sorted(p.name for p in folder.glob("*.npz"))
                target = folder / rng.choice(names)
            what, raw = mutated(target.read_bytes(), rng)
            target.write_bytes(raw)
            yield kind, target.name, what, folder
            shutil.rmtree(folder)


def run(seed: int, n: int, files: dict[str, Path]) -> dict[str, int]:
    """Run the cases; fail on an exception other than CheckpointError (or a multi-line
    message); return the outcomes counted."""
    outcomes: dict[str, int] = {}
    for kind, name, what, folder in cases(seed, n, files):
        try:
            load(kind, files, folder)
            outcome = "loaded"
        except CheckpointError as exc:
            assert "\n" not in str(exc) and str(exc).isprintable(), str(exc)[:300]
            outcome = "refused"
        except Exception as exc:  # the point: anything else is a finding
            raise AssertionError(f"seed {seed}, {kind} {name}, {what}: {type(exc).__name__}: {exc}") from exc
        outcomes[f"{kind} {outcome}"] = outcomes.get(f"{kind} {outcome}", 0) + 1
    return outcomes


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return build(tmp_path_factory.mktemp("fuzz"))


def test_genuine_files_load(files, tmp_path):
    for kind in [*RUNS, "saved"]:
        folder = tmp_path / kind
        if kind == "saved":
            folder.mkdir()
            shutil.copyfile(files[kind], folder / "state.npz")
        else:
            shutil.copytree(files[kind], folder)
        load(kind, files, folder)


@pytest.mark.parametrize("seed", [0, 1])
def test_fuzz_loaders(files, seed):
    """500 cases per seed (a few seconds)."""
    outcomes = run(seed, 500, files)
    for outcome in ("refused", "loaded"):  # some mutations get past the archive and the headers
        assert sum(v for k, v in outcomes.items() if k.endswith(outcome)) > 0, outcomes


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 110))
def test_fuzz_loaders_campaign(files, seed):
    """5,000 cases per seed (about 20 s each)."""
    run(seed, 5000, files)
