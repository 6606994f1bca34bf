"""Dataset I/O: atomic shards, byte-identical sharding, resume equality, validation on read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from simlab.data import parse_shard
from simlab.envs.collision2d.dataset import CollectConfig, VideoDataset, collect
from simlab.errors import ConfigError, DatasetError
from simlab.integrity import seal

CFG = CollectConfig(scenario="collision", split="train", size=300, resolution=32, videos_per_shard=128)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "a"
    res = collect(CFG, out, progress=False)
    assert res.complete and res.written == [0, 1, 2]
    return out


def test_sharding_is_byte_identical(unbroken: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    for i in range(3):
        collect(CFG, out, shard=(i, 3), progress=False)
    assert _tree_bytes(out) == _tree_bytes(unbroken)


def test_resume_after_interruption_equals_unbroken(unbroken: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "c"
    import simlab.envs.collision2d.dataset as dsmod

    real = dsmod.write_h5_shard
    calls = {"n": 0}

    def dying(path, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # killed while writing the second shard
            raise KeyboardInterrupt
        return real(path, *a, **k)

    monkeypatch.setattr(dsmod, "write_h5_shard", dying)
    with pytest.raises(KeyboardInterrupt):
        collect(CFG, out, progress=False)
    monkeypatch.setattr(dsmod, "write_h5_shard", real)
    assert not (out / "manifest.json").exists()
    assert not list(out.rglob(".*tmp*")), "no half-written file may remain"
    with pytest.raises(ConfigError, match="--resume"):
        collect(CFG, out, progress=False)
    res = collect(CFG, out, resume=True, progress=False)
    assert res.skipped == [0] and res.written == [1, 2] and res.complete
    assert _tree_bytes(out) == _tree_bytes(unbroken)


def test_resume_with_other_config_refused(unbroken: Path, tmp_path: Path) -> None:
    out = tmp_path / "d"
    shutil.copytree(unbroken, out)
    other = CollectConfig(scenario="collision", split="train", size=300, resolution=32, videos_per_shard=128, seed=1)
    with pytest.raises(ConfigError, match="seed"):
        collect(other, out, resume=True, progress=False)


def test_states_only_dataset_rerenders_bit_exactly(unbroken: Path, tmp_path: Path) -> None:
    cfg = CollectConfig(**{**CFG.__dict__, "store_frames": False})
    collect(cfg, tmp_path / "s", progress=False)
    a = VideoDataset(unbroken).load(100, 200)
    b = VideoDataset(tmp_path / "s").load(100, 200)
    assert np.array_equal(a["frames"], b["frames"])
    assert np.array_equal(a["pos"], b["pos"])
    size_frames = sum(p.stat().st_size for p in unbroken.rglob("*.h5"))
    size_states = sum(p.stat().st_size for p in (tmp_path / "s").rglob("*.h5"))
    assert size_states < size_frames


def test_truncated_shard_is_named(unbroken: Path, tmp_path: Path) -> None:
    out = tmp_path / "t"
    shutil.copytree(unbroken, out)
    shard = out / "shards" / "shard-00001.h5"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(DatasetError, match="shard-00001.h5"):
        VideoDataset(out)


def test_corrupt_chunk_detected(unbroken: Path, tmp_path: Path) -> None:
    out = tmp_path / "k"
    shutil.copytree(unbroken, out)
    shard = out / "shards" / "shard-00000.h5"
    raw = bytearray(shard.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 64] = bytes(64)  # same size, damaged content
    shard.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="shard-00000.h5"):
        VideoDataset(out, verify=True)
    ds = VideoDataset(out)  # size check alone passes; reading the damaged chunk must still fail loudly
    with pytest.raises(DatasetError, match="shard-00000.h5"):
        ds.load(0, 128)


def test_bad_manifest(unbroken: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    shutil.copytree(unbroken, out)
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="manifest"):
        VideoDataset(out)
    man = json.loads((unbroken / "manifest.json").read_text())
    man["format_version"] = 999
    (out / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(DatasetError, match="checksum mismatch"):  # a hand edit is refused...
        VideoDataset(out)
    (out / "manifest.json").write_text(json.dumps(seal(man)))
    with pytest.raises(DatasetError, match="newer"):  # ...and a sealed one still checked field by field
        VideoDataset(out)
    with pytest.raises(DatasetError, match="no such dataset"):
        VideoDataset(tmp_path / "nope")


@pytest.mark.parametrize("text", ["1", "2/2", "a/b", "-1/3", "0/0"])
def test_parse_shard_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_shard(text)


@pytest.mark.parametrize("kw", [{"resolution": 8}, {"scenario": "nope"}, {"split": "nope"}, {"size": 0},
                                {"grid": "30k", "size": 10**6}, {"seed": -1}])
def test_bad_collect_config(kw) -> None:
    with pytest.raises(ConfigError):
        CollectConfig(**kw)


def test_grid_dataset_covers_paper_grid(tmp_path: Path) -> None:
    cfg = CollectConfig(scenario="uniform", split="train", grid="30k", size=0, store_frames=False,
                        videos_per_shard=10000)
    assert cfg.total == 30000
    collect(cfg, tmp_path / "g", progress=False)
    st = VideoDataset(tmp_path / "g").load(0, 30000, frames=False)
    r = np.unique(np.round(st["radii"][:, 0], 12))
    assert len(r) == 100 and np.isclose(r.min(), 0.7) and np.isclose(r.max(), 1.5)
