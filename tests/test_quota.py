"""core.quota: in the hosted demo the oldest runs and unused corpora make way; nothing else is ever deleted."""

from __future__ import annotations

import json
import os

from core.limits import Limits
from core.quota import make_room


def _run(root, name, mb, age, corpus=None):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(bytes(mb * 1_000_000))
    (folder / "run.json").write_text(json.dumps({"corpus": {"source": corpus}}))
    for p in (folder, folder / "model.safetensors"):
        os.utime(p, (age, age))
    return folder


def test_the_oldest_idle_runs_go_first_until_it_fits(tmp_path):
    runs = tmp_path / "runs"
    for name, age in (("oldest-busy", 100), ("old", 200), ("newer", 300), ("newest", 400)):
        _run(runs, name, 3, age)
    caps = Limits(demo=True, max_storage_mb=11)
    # 12 MB + 2 MB incoming is 3 MB over: "old" and "newer" go; the training one stays whatever its age
    assert make_room(runs, caps, busy={"oldest-busy"}, incoming=2_000_000) == ["old", "newer"]
    assert sorted(p.name for p in runs.iterdir()) == ["newest", "oldest-busy"]


def test_corpora_go_only_when_no_remaining_run_uses_them(tmp_path):
    runs, corpora = tmp_path / "runs", tmp_path / "corpora"
    corpora.mkdir()
    used, unused = corpora / "used.txt", corpora / "unused.txt"
    for p in (used, unused):
        p.write_bytes(bytes(2_000_000))
    _run(runs, "training", 3, 100, corpus=str(used))
    removed = make_room(runs, Limits(demo=True, max_storage_mb=5), busy={"training"}, corpora_dir=corpora)
    assert removed == ["unused.txt"] and used.exists() and (runs / "training").exists()


def test_nothing_is_deleted_without_a_quota_or_when_it_fits(tmp_path):
    _run(tmp_path, "a", 1, 100)
    assert make_room(tmp_path, Limits()) == []
    assert make_room(tmp_path, Limits(demo=True, max_storage_mb=10)) == []
    assert (tmp_path / "a").exists()
