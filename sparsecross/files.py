"""Safe output files: atomic writes through unpredictable temporary files, and the rule that
no output may be one of the inputs.

Every file sparsecross writes (models, checkpoints, predictions, generated data, plots) goes
through :func:`atomic_output`: the bytes go to a fresh file made by :func:`tempfile.mkstemp`
(``O_CREAT | O_EXCL``, so a planted symlink cannot redirect the write) in the destination
folder, which is flushed, fsynced and renamed over the target only when complete.  On any
failure the temporary file is removed.  A process killed during a write leaves a file named
``.sparsecross-tmp-<pid>-<random>``; the next successful write to the same folder removes
those whose process no longer exists.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO

from .errors import OutputError, SparseCrossError, shown_path

__all__ = ["atomic_output", "check_outputs", "TMP_PREFIX", "clean_stale_temporaries"]

TMP_PREFIX = ".sparsecross-tmp-"
_TMP_RE = re.compile(re.escape(TMP_PREFIX) + r"(\d+)-[A-Za-z0-9_]+\.tmp$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: keep the file
    return True


def clean_stale_temporaries(folder: str | os.PathLike[str]) -> list[str]:
    """Remove the temporary files of dead sparsecross processes in ``folder``; return their names.

    Only names made by :func:`atomic_output` are considered, and only when the process id in
    the name no longer exists, so a write in progress in another process is never disturbed.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TMP_RE.match(entry.name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        try:
            if entry.is_file(follow_symlinks=False) or entry.is_symlink():
                os.unlink(entry.path)
                removed.append(entry.name)
        except OSError:
            pass
    return removed


def _file_mode(target: str) -> int:
    """The permission bits the output gets: the existing target's, else 0o666 less the umask
    (what ``open(target, "w")`` would give; mkstemp's files are private, 0o600)."""
    try:
        return os.stat(target).st_mode & 0o7777
    except OSError:
        pass
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no other way to read it; restored at once
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_dir(folder: str) -> None:
    """Make a rename durable (POSIX); best effort."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(target: str | os.PathLike[str], what: str = "file",
                  error: type[SparseCrossError] = OutputError) -> Iterator[IO[bytes]]:
    """Open a fresh temporary file next to ``target`` for binary writing; on success it is
    fsynced and renamed over ``target``; on any failure it is removed and ``target`` is left
    as it was.

    An ``OSError`` (a full disk, a missing folder, no permission) becomes ``error`` naming
    ``what`` and the path.  Other exceptions propagate unchanged.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_output(d / "x.bin") as fh:
    ...     _ = fh.write(b"hello")
    >>> (d / "x.bin").read_bytes(), sorted(p.name for p in d.iterdir())
    (b'hello', ['x.bin'])
    """
    path = os.fspath(target)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise error(f"cannot write {what} {shown_path(path)}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, _file_mode(path))
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, SparseCrossError):
            raise error(f"cannot write {what} {shown_path(path)}: {exc.strerror or exc}") from exc
        raise
    _fsync_dir(folder)
    clean_stale_temporaries(folder)


# ------------------------------------------------------------------ outputs vs inputs
def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
    except (OSError, RuntimeError):
        pass
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(outputs: Mapping[str, str | os.PathLike[str] | None],
                  inputs: Mapping[str, Iterable[str | os.PathLike[str]]]) -> None:
    """Refuse, before any work, an output that is the same file as an input or another output.

    ``outputs`` maps a flag (``"--out"``) to a path (None when not given); ``inputs`` maps a
    role (``"the training data"``) to the files it reads.  Paths are compared resolved and
    with :func:`os.path.samefile`, so symlinks, hard links and ``./x`` vs ``x`` are caught.

    Raises
    ------
    OutputError
        Naming the flag, the path and the input it would overwrite.
    """
    given = [(flag, Path(os.fspath(p))) for flag, p in outputs.items() if p is not None]
    files = [(role, Path(os.fspath(f))) for role, fs in inputs.items() for f in fs]
    for i, (flag, out) in enumerate(given):
        for role, f in files:
            if _same_file(out, f):
                raise OutputError(
                    f"{flag} {shown_path(out)} is {role} ({shown_path(f)}); refusing to "
                    "overwrite an input: write the output elsewhere"
                )
        for flag2, out2 in given[i + 1:]:
            if _same_file(out, out2):
                raise OutputError(f"{flag} and {flag2} are the same file {shown_path(out)}; "
                                  "give two different paths")


def input_files(source: object) -> list[Path]:
    """The files a data source names, for :func:`check_outputs` (empty if it names none)."""
    from .read import resolve_files

    if source is None:
        return []
    try:
        return resolve_files(source)  # type: ignore[arg-type]
    except SparseCrossError:
        return []
