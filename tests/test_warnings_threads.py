"""The library never swaps the process-wide warning filters while other threads run.

``warnings.catch_warnings`` saves ``warnings.filters`` (and ``showwarning``) on entry, replaces
them for the whole process and puts the saved ones back on exit (on Python < 3.14 it is not
thread-local).  A block in one thread therefore turns another thread's warnings into errors or
silences them, and on exit throws away the filters another thread set meanwhile.  sparsecross
runs in threads (Dask worker threads run several tasks at once, users call the API from their
own threads), so each test here holds a library call at the point where it used to be inside
such a block (a patched inner call waits on an event) while this thread warns and adds a
filter: the warnings must be shown as this thread's filters say, and the filter must survive.
No sleeps: events order the threads, whatever the machine's load.
"""

from __future__ import annotations

import importlib
import threading
import tokenize
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import sparsecross
from sparsecross.errors import EmptyModelWarning

REPO_ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC_SPEC = REPO_ROOT / "data" / "specs" / "synthetic.toml"
#: Safety net only (a hung thread fails the test instead of hanging the suite): the events
#: order the threads, so nothing waits for a time to pass.
WAIT = 600.0
ADDED = "a filter added by another thread"


def _held(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> tuple[threading.Event, threading.Event]:
    """Patch ``owner.name`` so that its first call sets ``inside`` and waits for ``release``
    before it runs; returns (inside, release)."""
    inside, release = threading.Event(), threading.Event()
    orig = getattr(owner, name)

    def hold(*args: Any, **kwargs: Any) -> Any:
        if not inside.is_set():
            inside.set()
            if not release.wait(WAIT):
                raise AssertionError("never released")
        return orig(*args, **kwargs)

    monkeypatch.setattr(owner, name, hold)
    return inside, release


def _warn_while_held(inside: threading.Event, release: threading.Event, call: Callable[[], Any]) -> Any:
    """Run ``call`` in a thread; once it is held, warn (a UserWarning, an EmptyModelWarning)
    and add a filter here, with filters that show every warning.  Returns ``call``'s result
    (its exception re-raised) after checking that both warnings were recorded, not raised or
    silenced, and that the added filter is still there."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            out["error"] = exc

    with warnings.catch_warnings(record=True) as seen:  # the test's own thread, before any other starts
        warnings.simplefilter("always")
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        try:
            assert inside.wait(WAIT), "the library call never reached the held point"
            try:
                warnings.warn("a warning of another thread", UserWarning)
                warnings.warn("l1 removed every weight in another thread's model", EmptyModelWarning)
            except Warning as exc:
                pytest.fail(f"another thread's filters made this thread's warning an error: {exc!r}")
            warnings.filterwarnings("ignore", message=ADDED)
        finally:
            release.set()
            worker.join(WAIT)
        assert not worker.is_alive()
        shown = [str(w.message) for w in seen]
        assert "a warning of another thread" in shown, f"this thread's UserWarning was lost: {shown}"
        assert "l1 removed every weight in another thread's model" in shown, \
            f"this thread's EmptyModelWarning was lost: {shown}"
        assert any(f[1] is not None and f[1].pattern == ADDED for f in warnings.filters), \
            "the filter added while the library call ran was thrown away when it ended"
    if "error" in out:
        raise out["error"]
    return out["result"]


def test_checkpoint_header_check_leaves_other_threads_warnings_alone(tmp_path, monkeypatch):
    """Reading a checkpoint turned every warning of every thread into an error while it parsed
    a member's ``.npy`` header (NumPy warns about a Python 2 header)."""
    from sparsecross.checkpoint import read_checkpoint
    from sparsecross.state16 import new_state

    path = tmp_path / "state.npz"
    new_state(16).save(path, {"run": "threads"})
    inside, release = _held(monkeypatch, np.lib.format, "read_magic")
    state, meta = _warn_while_held(inside, release, lambda: read_checkpoint(path))
    assert meta == {"run": "threads"} and state.n_columns == 16


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_checkpoint_header_reads_what_numpy_writes(version):
    """The header check that replaced NumPy's parser reads every header NumPy writes as NumPy
    does (the members' dtypes, Fortran order, 0 to 3 dimensions), and refuses one whose length
    runs past the member's end (bytes that happen to end like a header)."""
    import io

    from sparsecross.checkpoint import _MEMBERS, _read_header

    dtypes = {d for ds, _ in _MEMBERS.values() for d in ds}
    arrays = [np.zeros(shape, dtype=d) for d in dtypes for shape in [(), (0,), (7,), (5, 3), (2, 3, 4)]]
    arrays += [np.asfortranarray(np.zeros((4, 3))), np.array([1, None], dtype=object)]
    for arr in arrays:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, arr, version=version)
        buf.seek(0)
        mine = _read_header(buf)
        buf.seek(0)
        np.lib.format.read_magic(buf)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        theirs = read(buf)
        assert mine == theirs and isinstance(mine[0], tuple), arr.dtype
    size = 2 if version == (1, 0) else 4
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }" + b" " * 5 + b"\n"
    cut = np.lib.format.magic(*version) + (len(header) + 1).to_bytes(size, "little") + header
    with pytest.raises(ValueError, match="its header is truncated"):
        _read_header(io.BytesIO(cut))


def test_path_export_leaves_other_threads_warnings_alone(sample_path, monkeypatch):
    """``regularization_path`` silenced every thread's EmptyModelWarning while it exported a
    point's model (an empty model is a point of the path, not a warning)."""
    path_module = importlib.import_module("sparsecross.path")
    inside, release = _held(monkeypatch, path_module, "export_state")
    spec = sparsecross.load_spec(SYNTHETIC_SPEC)
    res = _warn_while_held(inside, release,
                           lambda: path_module.regularization_path(sample_path, spec, l1=[1e9], holdout=0.25))
    assert [p.nonzeros for p in res.points] == [0]


def test_tune_export_leaves_other_threads_warnings_alone(sample_path, monkeypatch):
    """``tune`` silenced every thread's EmptyModelWarning while it exported a lane's best model."""
    tune_module = importlib.import_module("sparsecross.tune")
    inside, release = _held(monkeypatch, tune_module, "export_state")
    spec = sparsecross.load_spec(SYNTHETIC_SPEC)
    res = _warn_while_held(inside, release, lambda: tune_module.tune(
        sample_path, spec, alpha=[0.1], l1=[1e9], epochs_max=1, holdout=0.25))
    assert [p.nonzeros for p in res.points] == [0]


def test_warmup_leaves_other_threads_warnings_alone(monkeypatch):
    """``warmup`` (which a Dask worker may run beside other tasks) ignored every warning of every
    thread while it exported its tiny model."""
    train_module = importlib.import_module("sparsecross.train")
    inside, release = _held(monkeypatch, train_module, "export_state")
    _warn_while_held(inside, release, sparsecross.warmup)


def test_local_cluster_start_leaves_other_threads_warnings_alone(monkeypatch):
    """Starting ``local:N`` swapped the filters of the whole process (a user's threads too) for
    the seconds Dask takes, to hide its "Port 8787 is already in use" warning."""
    distributed = pytest.importorskip("distributed")
    from sparsecross.dask import connect

    seen: dict[str, Any] = {}

    class Cluster:
        def __init__(self, **kwargs: Any) -> None:
            seen.update(kwargs)

        def close(self) -> None:
            pass

    monkeypatch.setattr(distributed, "LocalCluster", Cluster)
    monkeypatch.setattr(distributed, "Client", lambda cluster, **kwargs: ("client", cluster))
    inside, release = _held(monkeypatch, Cluster, "__init__")
    client, cluster = _warn_while_held(inside, release, lambda: connect("local:1"))
    assert client == ("client", cluster) and isinstance(cluster, Cluster)
    assert seen["dashboard_address"] is None  # no dashboard, as before


@pytest.mark.dask
def test_local_cluster_start_with_port_8787_taken_does_not_warn():
    """The scheduler of ``local:N`` serves its HTTP endpoints on a free loopback port: Dask's
    default 8787, when taken (by another cluster, or here), is no "already in use" warning."""
    pytest.importorskip("distributed")
    import socket

    from sparsecross.dask import connect

    holder = socket.socket()
    try:
        try:
            holder.bind(("127.0.0.1", 8787))
            holder.listen()
        except OSError:
            pass  # taken already: as good
        with warnings.catch_warnings(record=True) as seen:  # of the whole process: the scheduler's loop thread too
            warnings.simplefilter("always")
            client, cluster = connect("local:1")
            try:
                port = cluster.scheduler.http_server.port
                host = cluster.scheduler.http_server.address
            finally:
                client.close()
                cluster.close()
    finally:
        holder.close()
    assert not [str(w.message) for w in seen if "already in use" in str(w.message)]
    assert host == "127.0.0.1" and port != 8787


# ------------------------------------------------------------------------------ guard
#: What changes the warning filters (or how warnings are shown) for the whole process.
_PROCESS_WIDE = {"catch_warnings", "simplefilter", "filterwarnings", "resetwarnings", "showwarning",
                 "captureWarnings"}
#: Where the library may use them, how many times, and why that is safe.  A new use needs a
#: reason here: on Python < 3.14 it changes the warnings of every thread of the process.
ALLOWED = {
    "sparsecross/cli.py": ({"catch_warnings": 1, "simplefilter": 1, "showwarning": 1},
                           ("main() is the program: it sets how the command's warnings look, in the main "
                            "thread, before the command starts any thread, for every thread it starts")),
}


def _uses(path: Path) -> dict[str, int]:
    """The names of :data:`_PROCESS_WIDE` in the code of ``path`` (comments and strings aside), counted."""
    with tokenize.open(path) as fh:
        names = [tok.string for tok in tokenize.generate_tokens(fh.readline)
                 if tok.type == tokenize.NAME and tok.string in _PROCESS_WIDE]
    return {name: names.count(name) for name in sorted(set(names))}


def test_process_wide_warning_state_only_where_reviewed():
    found = {p.relative_to(REPO_ROOT).as_posix(): uses for p in sorted((REPO_ROOT / "sparsecross").rglob("*.py"))
             if (uses := _uses(p))}
    assert found == {path: uses for path, (uses, _why) in ALLOWED.items()}, (
        "catch_warnings and the filters are process-wide (on Python < 3.14, for every thread): check the "
        "condition instead of relying on a warning, or add the use to ALLOWED with the reason it is safe")
