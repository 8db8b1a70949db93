"""The CLI's checks of output paths, before any work: an output file name that can be written
(:func:`check_out`) and that is none of the command's inputs (:func:`guard_outputs`), the
checkpoint folder's files included."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import SparseCrossError, shown_path

__all__ = ["check_out", "guard_outputs"]


def check_out(path: str, flag: str, example: str) -> Path:
    """``path`` as an output file name, checked before any work: not a folder, in a folder
    that exists."""
    out = Path(path)
    if out.is_dir():
        raise SparseCrossError(f"{flag} {shown_path(path)} is a folder; give a file name such as {example}")
    if not out.parent.exists():
        raise SparseCrossError(f"folder {shown_path(out.parent)} of {flag} does not exist")
    return out


def guard_outputs(outputs: dict[str, Any], *, spec: str | None = None, model: str | None = None,
                  data: Any = None, valid: Any = None) -> None:
    """Refuse (one line, nothing written) an output that is one of the command's inputs."""
    from .files import check_outputs, input_files

    inputs: dict[str, list[Any]] = {
        "the spec": [spec] if spec else [],
        "the model": [model] if model else [],
        "an input data file": input_files(data),
        "a --valid file": input_files(valid),
    }
    check_outputs(outputs, inputs)


def _checkpoint_files(ckpt: str | None, out: str | None) -> dict[str, Any]:
    """The files training writes in the checkpoint folder, as outputs for :func:`guard_outputs`:
    ``state.npz``, the early-stopping states ``best-<epoch>.npz`` there, and the one ``--out``
    names if it has that form."""
    if not ckpt:
        return {}
    from .checkpoint import BEST_PREFIX
    from .files import _same_file

    files: dict[str, Any] = {"--checkpoint state file": os.path.join(ckpt, "state.npz")}
    best = sorted(Path(ckpt).glob(f"{BEST_PREFIX}*.npz")) if os.path.isdir(ckpt) else []
    if out and Path(out).name.startswith(BEST_PREFIX) and Path(out).suffix == ".npz" \
            and _same_file(Path(out).parent, Path(ckpt)):
        best.append(Path(ckpt) / Path(out).name)
    for f in best:
        files[f"--checkpoint early-stop state {f.name}"] = f
    return files
