"""The output folder: --overwrite replaces only what this tool wrote, protected folders are refused
whatever the flags, the checks hold at the moment of the swap, and killed runs' leftovers go.

Most tests drive :mod:`understanding_rl_vision.pipeline.publish` with a stand-in writer (fast);
the property test and the CLI tests go through real runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from understanding_rl_vision.errors import UserError
from understanding_rl_vision.pipeline.publish import RECORD, check_target, publish, remove_leftovers


def write_fake_output(folder: Path, text: str = "page") -> None:
    (folder / "data").mkdir()
    (folder / "interface.html").write_text(text)
    (folder / "data" / "manifest.js").write_text(text)


def build(
    out: Path, *, overwrite: bool = False, cache: Path | None = None, text: str = "page", checkpoint: Path | None = None
) -> None:
    target = check_target(out, overwrite=overwrite, cache_dir=cache or out.parent / "cache", checkpoint=checkpoint)
    publish(target, lambda folder: write_fake_output(folder, text))


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_an_output_records_what_it_holds_and_overwrite_replaces_it(tmp_path):
    out = tmp_path / "out"
    build(out)
    record = (out / RECORD).read_text()
    assert '"files": [\n  "data/manifest.js",\n  "interface.html"\n ]' in record
    build(out, overwrite=True, text="second")
    assert (out / "interface.html").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no partial or old folder left


def test_a_folder_of_the_users_is_never_replaced(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    (out / "user.txt").write_text("x")
    with pytest.raises(UserError, match=r"holds 1 file\(s\) \(user.txt\) and was not written by this tool"):
        build(out, overwrite=True)
    assert snapshot(tmp_path) == {"d/user.txt": b"x"}


def test_our_output_with_a_file_added_is_not_replaced(tmp_path):
    out = tmp_path / "out"
    build(out)
    (out / "data" / "notes.md").write_text("mine")
    before = snapshot(tmp_path)
    with pytest.raises(UserError, match=r"data/notes.md\) that this tool did not write"):
        build(out, overwrite=True, text="second")
    assert snapshot(tmp_path) == before


def test_a_training_run_is_refused_by_name(tmp_path):
    run = tmp_path / "runs" / "coinrun"
    run.mkdir(parents=True)
    for name in ("checkpoint.safetensors", "train_state.pt", "log.csv"):
        (run / name).write_text(name)
    with pytest.raises(UserError, match=r"holds the checkpoint"):
        build(run, overwrite=True, checkpoint=run / "checkpoint.safetensors")
    with pytest.raises(UserError, match=r"holds a training run \(train_state.pt, log.csv\)"):
        build(run, overwrite=True)
    assert len(snapshot(run)) == 3


@pytest.mark.parametrize("where", ["cwd", "above cwd", "home", "above home", "root"])
def test_protected_folders_are_refused_even_when_empty(tmp_path, monkeypatch, where):
    work = tmp_path / "home" / "me" / "project"
    work.mkdir(parents=True)
    monkeypatch.chdir(work if where.endswith("cwd") else tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home" / "me"))
    out = {
        "cwd": work,
        "above cwd": work.parent,
        "home": work.parent,
        "above home": tmp_path / "home",
        "root": Path("/"),
    }[where]
    expected = {
        "cwd": "working directory",
        "above cwd": "working directory",
        "home": "home folder",
        "above home": "home folder",
        "root": "root of a filesystem",
    }[where]
    with pytest.raises(UserError, match=expected):
        check_target(out, overwrite=True, cache_dir=tmp_path / "cache")
    assert work.is_dir()


def test_a_cache_inside_the_output_and_an_output_inside_the_cache_are_refused(tmp_path):
    with pytest.raises(UserError, match="choose a --cache-dir outside -o"):
        check_target(tmp_path / "out", overwrite=False, cache_dir=tmp_path / "out" / "cache")
    with pytest.raises(UserError, match="inside the cache folder"):
        check_target(tmp_path / "cache" / "out", overwrite=False, cache_dir=tmp_path / "cache")


def test_a_symbolic_link_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(UserError, match="is a symbolic link"):
        check_target(tmp_path / "link", overwrite=True, cache_dir=tmp_path / "cache")


def test_a_folder_that_appears_during_the_run_is_left_alone(tmp_path):
    out = tmp_path / "race"
    target = check_target(out, overwrite=False, cache_dir=tmp_path / "cache")

    def write(folder: Path) -> None:
        write_fake_output(folder)
        out.mkdir()  # a user's mkdir while the run works
        (out / "user.txt").write_text("x")

    with pytest.raises(UserError, match="appeared during the run and was left as it is"):
        publish(target, write)
    assert snapshot(tmp_path) == {"race/user.txt": b"x"}


def test_an_empty_folder_that_appears_is_taken(tmp_path):
    out = tmp_path / "race"
    target = check_target(out, overwrite=False, cache_dir=tmp_path / "cache")
    publish(target, lambda folder: (write_fake_output(folder), out.mkdir()))
    assert (out / "interface.html").read_text() == "page"


def test_an_output_replaced_by_another_run_meanwhile_is_not_replaced_again(tmp_path):
    out = tmp_path / "out"
    build(out, text="first")
    target = check_target(out, overwrite=True, cache_dir=tmp_path / "cache")

    def write(folder: Path) -> None:
        write_fake_output(folder, "mine")
        build(out, overwrite=True, text="other run")  # finishes first

    with pytest.raises(UserError, match="was replaced by another run during this one"):
        publish(target, write)
    assert (out / "interface.html").read_text() == "other run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_user_files_added_during_the_run_stop_the_swap(tmp_path):
    out = tmp_path / "out"
    build(out)
    target = check_target(out, overwrite=True, cache_dir=tmp_path / "cache")
    publish_text = lambda folder: (write_fake_output(folder, "new"), (out / "user.txt").write_text("x"))  # noqa: E731
    with pytest.raises(UserError, match=r"\(user.txt\) that this tool did not write"):
        publish(target, publish_text)
    assert (out / "user.txt").read_text() == "x" and (out / "interface.html").read_text() == "page"


def test_leftovers_of_killed_runs_are_removed_or_put_back(tmp_path):
    out = tmp_path / "out"
    build(out, text="old")
    pid = dead_pid()
    partial = tmp_path / f".out.partial-{pid}-abc"
    partial.mkdir()
    (partial / "interface.html").write_text("half")
    os.rename(out, tmp_path / f".out.old-{pid}-xyz")  # killed between its two renames
    live = tmp_path / f".out.partial-{os.getpid()}-def"  # a run still going: left alone
    live.mkdir()
    remove_leftovers(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "out"]
    assert (out / "interface.html").read_text() == "old"


def test_an_old_output_left_aside_is_removed_only_if_it_is_all_ours(tmp_path):
    out = tmp_path / "out"
    build(out, text="old")
    pid = dead_pid()
    clean, stray = tmp_path / f".out.old-{pid}-a", tmp_path / f".out.old-{pid}-b"
    shutil.copytree(out, clean)
    shutil.copytree(out, stray)
    (stray / "stray.txt").write_text("not ours")  # never deleted, even in a leftover
    build(out, overwrite=True, text="new")
    assert (out / "interface.html").read_text() == "new" and not clean.exists()
    assert snapshot(stray)["stray.txt"] == b"not ours" and len(snapshot(stray)) == 4


# --- property: random trees of user files around and inside -o -------------------------------

NAMES = st.sampled_from(["a", "b", "out", "data", "interface.html", "notes.txt"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map(lambda parts: "/".join(parts))


REASONS = (
    "working directory",
    "not written by this tool",
    "did not write",
    "pass --overwrite",
    "not a folder",
    "is a file",
    "cache folder",
)


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    user_files=st.lists(PATHS, max_size=8),
    ours=st.sampled_from([None, "out", "a/out", "a"]),
    output=st.one_of(st.none(), PATHS),
    cwd=st.sampled_from([".", "a", "a/b"]),
    overwrite=st.booleans(),
)
def test_a_run_refuses_or_leaves_every_file_it_did_not_write(
    tmp_path_factory, monkeypatch, user_files, ours, output, cwd, overwrite
):
    """Random user files around and inside -o (and perhaps an earlier output of ours, with or
    without user files added into it); whatever the run does, every user file keeps its bytes."""
    root = tmp_path_factory.mktemp("tree")
    output = output or ours or "out"  # None: the run writes where our earlier output is
    if ours is not None:  # an earlier output of ours somewhere in the tree
        build(root / ours)
    written = set(snapshot(root))
    (root / cwd).mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(root / cwd)
    for name in user_files:
        path = root / name
        if any(p.is_file() for p in [path, *path.parents] if p != root and root in p.parents) or path.is_dir():
            continue  # a path through a file, or a folder already
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"user {name}")
    users = {name: data for name, data in snapshot(root).items() if name not in written}
    try:
        build(root / output, overwrite=overwrite, cache=root / "cache", text="new")
        assert (root / output / "interface.html").read_text() == "new"
        event("replaced an output of ours" if output == ours else "written")
    except UserError as refusal:
        event("refused: " + next((k for k in REASONS if k in str(refusal)), str(refusal)))
    after = snapshot(root)
    assert {name: after.get(name) for name in users} == users
