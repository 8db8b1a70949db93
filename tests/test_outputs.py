"""Outputs never overwrite inputs, and every write goes through an unpredictable temporary file
(issue 'Trust', items 1 and 2).

Each command is run in-process through ``sparsecross.cli.main``; every refusal must be one line,
exit code 1, and leave every file byte for byte as it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import sparsecross as sx
from sparsecross.cli import main
from sparsecross.errors import ArtifactError, OutputError
from sparsecross.files import TMP_PREFIX, atomic_output, check_outputs, clean_stale_temporaries

REPO_ROOT = Path(__file__).resolve().parents[1]
SPEC = REPO_ROOT / "data" / "specs" / "synthetic.toml"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("outputs")
    data = sx.generate(d / "data.parquet", rows=3000, seed=3)
    valid = sx.generate(d / "valid.parquet", rows=1000, seed=3, first_row=3000)
    folder = d / "folder"
    folder.mkdir()
    sx.generate(folder / "a.parquet", rows=1000, seed=4)
    sx.generate(folder / "b.parquet", rows=1000, seed=4, first_row=1000)
    spec = d / "spec.toml"
    spec.write_bytes(SPEC.read_bytes())
    model = d / "model.scx"
    sx.save_model(sx.train(data, sx.load_spec(spec), l1=0.3), model)
    os.symlink(data, d / "link.parquet")
    os.link(data, d / "hard.parquet")
    return {"dir": d, "data": data, "valid": valid, "folder": folder, "spec": spec, "model": model,
            "link": d / "link.parquet", "hard": d / "hard.parquet"}


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def refused(capsys: pytest.CaptureFixture[str], files: dict[str, Path], argv: list[object], *fragments: str) -> None:
    before = _snapshot(files["dir"])
    rc = main([str(a) for a in argv])
    _out, err = capsys.readouterr()
    assert rc == 1, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("sparsecross: error:"), err
    for frag in fragments:
        assert frag in lines[0], lines[0]
    assert _snapshot(files["dir"]) == before, "a refused command changed a file"


@pytest.mark.parametrize("out", ["data", "link", "hard", "spec", "valid", "./data"])
def test_train_refuses_an_output_that_is_an_input(capsys, files, monkeypatch, out):
    monkeypatch.chdir(files["dir"])
    target = "./data.parquet" if out == "./data" else files[out]
    refused(capsys, files, ["train", "spec.toml", "data.parquet", "--valid", files["valid"], "--out", target,
                            "-q"], "--out", "refusing to overwrite an input")


def test_train_refuses_an_output_inside_a_data_folder(capsys, files):
    refused(capsys, files, ["train", files["spec"], files["folder"], "--out", files["folder"] / "b.parquet", "-q"],
            "input data file")


def test_train_refuses_a_checkpoint_folder_that_is_an_input(capsys, files):
    refused(capsys, files, ["train", files["spec"], files["data"], "--out", files["dir"] / "new.scx",
                            "--checkpoint", files["data"], "-q"], "--checkpoint")


def test_train_refuses_an_early_stop_state_file_as_out_or_input(capsys, files):
    """best-<epoch>.npz in the checkpoint folder is written (and pruned) by early stopping:
    --out must not name one (existing or not), and an input that is one is refused."""
    ckpt = files["dir"] / "ckpt"
    ckpt.mkdir(exist_ok=True)
    for name in ("best-2.npz", "best-17.npz"):
        refused(capsys, files, ["train", files["spec"], files["data"], "--out", ckpt / name, "--checkpoint", ckpt,
                                "--early-stop", "2", "-q"], "--out", name)
    existing = ckpt / "best-3.npz"
    existing.write_bytes((files["data"]).read_bytes())  # a Parquet file there, given as data
    try:
        for argv in (["train", files["spec"], existing], ["train", files["spec"], files["data"], "--valid", existing]):
            refused(capsys, files, [*argv, "--out", files["dir"] / "new.scx", "--checkpoint", ckpt, "-q"],
                    "best-3.npz", "refusing to overwrite an input")
    finally:
        existing.unlink()


def test_path_refuses_spec_and_data_as_out(capsys, files):
    for target in (files["spec"], files["data"]):
        refused(capsys, files, ["path", files["spec"], files["data"], "--holdout", "0.2", "--max-nonzeros", "50",
                                "--out", target, "-q"], "--out")


def test_path_refuses_the_same_file_for_out_and_plot(capsys, files):
    pytest.importorskip("matplotlib")
    refused(capsys, files, ["path", files["spec"], files["data"], "--holdout", "0.2", "--max-nonzeros", "50",
                            "--out", files["dir"] / "x.png", "--plot", files["dir"] / "x.png", "-q"], "same file")


def test_predict_refuses_model_and_data_as_out(capsys, files):
    for target in (files["model"], files["data"], files["link"]):
        refused(capsys, files, ["predict", files["model"], files["data"], "--out", target, "-q"], "--out")


def test_plot_weights_refuses_the_model_as_out(capsys, files):
    link = files["dir"] / "model-link.png"
    if not link.exists():
        os.symlink(files["model"], link)
    refused(capsys, files, ["plot-weights", files["model"], "--out", link, "-q"], "the model")


def test_check_outputs_unit(tmp_path):
    a = tmp_path / "a"
    a.write_text("x")
    check_outputs({"--out": tmp_path / "b"}, {"x": [a]})  # a new file is fine
    with pytest.raises(OutputError, match="refusing"):
        check_outputs({"--out": tmp_path / "sub" / ".." / "a"}, {"x": [a]})
    with pytest.raises(OutputError, match="same file"):
        check_outputs({"--out": tmp_path / "b", "--plot": tmp_path / "./b"}, {})


# ----------------------------------------------------------------- temporary files
def test_a_planted_symlink_at_the_old_temporary_name_is_not_followed(tmp_path, files):
    """The old writer used ``<target>.tmp-<pid>``: a symlink planted there redirected the write."""
    model = sx.load_model(files["model"])
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "m.scx"
    os.symlink(victim, tmp_path / f"m.scx.tmp-{os.getpid()}")
    sx.save_model(model, target)
    assert victim.read_text() == "precious"
    assert sx.load_model(target).nonzeros == model.nonzeros


def test_writing_onto_a_symlinked_target_replaces_the_link_not_the_file_it_points_to(tmp_path, files):
    model = sx.load_model(files["model"])
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.symlink(victim, tmp_path / "m.scx")
    sx.save_model(model, tmp_path / "m.scx")
    assert victim.read_text() == "precious"
    assert not (tmp_path / "m.scx").is_symlink()


def test_temporary_files_are_removed_on_failure(tmp_path):
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with atomic_output(tmp_path / "x.bin") as fh:
            fh.write(b"partial")
            raise Boom
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_names_the_path(tmp_path, monkeypatch, files):
    model = sx.load_model(files["model"])

    def full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ArtifactError, match=r"No space left.*|.*m\.scx.*") as info:
        sx.save_model(model, tmp_path / "m.scx")
    assert "m.scx" in str(info.value) and "No space left" in str(info.value)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_a_killed_writer_are_cleaned_by_the_next_write(tmp_path, files):
    """SIGKILL during the final write leaves a partial temporary file; it is recognisable and
    the next successful write to the folder removes it."""
    script = textwrap.dedent(f"""
        import os, signal, sparsecross as sx
        model = sx.load_model({str(files["model"])!r})
        def die(fd):
            os.kill(os.getpid(), signal.SIGKILL)
        os.fsync = die
        sx.save_model(model, {str(tmp_path / "m.scx")!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(TMP_PREFIX), left
    sx.save_model(sx.load_model(files["model"]), tmp_path / "other.scx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.scx"]


def test_a_live_writers_temporary_file_is_kept(tmp_path):
    live = tmp_path / f"{TMP_PREFIX}{os.getppid()}-abc123.tmp"
    live.write_bytes(b"in progress")
    assert clean_stale_temporaries(tmp_path) == []
    assert live.exists()


def test_outputs_get_ordinary_permissions(tmp_path, files):
    old = os.umask(0o022)
    try:
        sx.save_model(sx.load_model(files["model"]), tmp_path / "m.scx")
    finally:
        os.umask(old)
    assert (tmp_path / "m.scx").stat().st_mode & 0o777 == 0o644


def test_hostile_output_paths_are_named_short(tmp_path):
    """An output in a ~3,500-character folder of control characters: the refusals name it short."""
    from sparsecross.errors import OutputError
    from sparsecross.files import atomic_output, check_outputs
    from tests.hostile import assert_short, hostile_folder

    d = hostile_folder(tmp_path)
    data = d / "in.parquet"
    data.write_bytes(b"x")
    for fn in (lambda: atomic_output(d / "nodir" / "m.scx").__enter__(),
               lambda: check_outputs({"--out": data}, {"the training data": [data]}),
               lambda: check_outputs({"--out": d / "o", "--plot": d / "o"}, {})):
        with pytest.raises(OutputError) as info:
            fn()
        assert_short(str(info.value))
