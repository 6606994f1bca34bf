"""Dataset I/O shared by every simlab collector: HDF5 shards plus a JSON manifest.

Layout of a dataset directory::

    DIR/manifest.json          format version, kind, generator config, counts,
                               one entry per shard (name, index range, bytes, sha256)
    DIR/shards/shard-00000.h5  one HDF5 file per fixed block of items

Writers create each shard as a temporary file and rename it into place, so a
shard file that exists is complete; ``--resume`` skips those. Shards are fixed
blocks of the item index range, independent of how many workers
(``--shard i/n``) wrote them, so the bytes do not depend on the sharding.
Every HDF5 dataset is written with ``track_times=False`` (no timestamps, so
equal content gives equal bytes) and the Fletcher-32 chunk checksum filter
(so a corrupted chunk fails loudly on read instead of returning garbage).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simlab.errors import ConfigError, DatasetError

FORMAT_VERSION = 2
"""2: the manifest is sealed (its own SHA-256, :mod:`simlab.integrity`) and 1-D arrays are checksummed."""
MANIFEST = "manifest.json"
SHARD_DIR = "shards"


def shard_name(j: int) -> str:
    """File name of shard ``j`` (relative to the dataset directory)."""
    return f"{SHARD_DIR}/shard-{j:05d}.h5"


MAX_SHARD_WORKERS = 100_000
"""Most workers a collection may be split into (more than any dataset has shards)."""


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"i/n"`` (worker i of n, 0-based) -> ``(i, n)``; ConfigError when malformed."""
    try:
        i_s, n_s = text.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError:
        raise ConfigError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n or n > MAX_SHARD_WORKERS:
        raise ConfigError(f"--shard {text!r}: need 0 <= i < n and 1 <= n <= {MAX_SHARD_WORKERS}")
    return i, n


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    SIGINT is deferred to the end of the block (:mod:`simlab.interrupt`); a
    SIGKILL leaves ``.<name>.tmp-<pid>``, which :func:`clean_orphans` removes.
    """
    from simlab.interrupt import deferred_sigint

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with deferred_sigint():  # Ctrl-C lands after the rename, never inside a C writer
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``final``; swap it into place only on success.

    A crash between the two renames leaves ``.<name>.old`` (the previous
    version), which :func:`recover_dir` puts back.
    """
    tmp = final.with_name(f".{final.name}.tmp")
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def recover_dir(final: Path) -> None:
    """Undo a swap interrupted between its two renames (see :func:`atomic_dir`)."""
    old = final.with_name(f".{final.name}.old")
    if not final.exists() and old.exists():
        os.replace(old, final)


_ORPHAN = re.compile(r"^\..+\.tmp-(\d+)$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_orphans(root: str | os.PathLike[str]) -> list[Path]:
    """Remove ``.<name>.tmp-<pid>`` files under ``root`` left by killed writers; returns them.

    A file whose pid is still running (another worker of a sharded collection)
    is kept. Called by every ``--resume``.
    """
    removed = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            m = _ORPHAN.match(name)
            if m and (int(m.group(1)) == os.getpid() or not _pid_alive(int(m.group(1)))):
                p = Path(dirpath) / name
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed.append(p)
    return removed


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sha256_file(path: str | os.PathLike[str], block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def h5_dataset_kwargs(shape: tuple[int, ...], compress: bool) -> dict[str, Any]:
    """Creation options for one array: checksummed (Fletcher-32) chunks, no timestamps.

    One chunk per leading item for arrays of frames/states, one chunk for a 1-D
    array (contact times, radii, indices). Only empty arrays and scalars (which
    HDF5 cannot chunk) are stored without the filter; the shard's SHA-256 in the
    manifest covers every byte anyway.
    """
    if len(shape) > 1 and shape[0] > 0:
        chunks: tuple[int, ...] | None = (1, *shape[1:])
    elif len(shape) == 1 and shape[0] > 0:
        chunks = (shape[0],)
    else:
        chunks = None
    kw: dict[str, Any] = {"track_times": False}
    if chunks is not None and all(c > 0 for c in chunks):
        kw["chunks"] = chunks
        kw["fletcher32"] = True
        if compress:
            kw["compression"] = "gzip"
            kw["compression_opts"] = 1
            kw["shuffle"] = False
    return kw


def write_h5_shard(path: str | os.PathLike[str], arrays: dict[str, np.ndarray],
                   attrs: dict[str, Any], compress: set[str] = frozenset()) -> int:
    """Atomically write one shard; returns its size in bytes.

    Args:
        path: final shard path.
        arrays: name -> array; each is stored as one HDF5 dataset, chunked per item.
        attrs: root attributes (JSON-encoded if not scalar/str).
        compress: names of arrays to gzip (lossless).
    """
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=False) as f:
        for k in sorted(attrs):
            v = attrs[k]
            f.attrs[k] = v if isinstance(v, (int, float, str, np.integer, np.floating)) else json.dumps(v)
        for k in sorted(arrays):
            a = np.ascontiguousarray(arrays[k])
            f.create_dataset(k, data=a, **h5_dataset_kwargs(a.shape, k in compress))
    return Path(path).stat().st_size


def open_h5(path: str | os.PathLike[str], sha256: str | None = None):  # -> h5py.File
    """Open an HDF5 file for reading, mapping any failure to a DatasetError naming the file.

    With ``sha256`` (a shard's manifest entry) the file's bytes are checked
    first, once per process: every byte a reader uses is covered.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: missing dataset file")
    if sha256 is not None:
        verify_file(path, sha256)
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"{path}: not a readable HDF5 file (truncated or corrupt: {e})") from None


def read_h5_array(f, name: str, sel: slice | None = None) -> np.ndarray:
    """Read one dataset (optionally a slice of items) with errors naming file and dataset."""
    import h5py

    try:
        d = f[name]
        if not isinstance(d, h5py.Dataset):
            raise DatasetError(f"{f.filename}: {name!r} is a group, not an array (wrong or damaged file)")
        return d[sel] if sel is not None else d[()]
    except KeyError:
        raise DatasetError(f"{f.filename}: no array {name!r} (wrong or damaged file)") from None
    except (OSError, TypeError, ValueError) as e:
        raise DatasetError(f"{f.filename}: array {name!r} is corrupt or of the wrong kind "
                           f"({' '.join(str(e).split())})") from None


def read_manifest(root: str | os.PathLike[str], kind: str | None = None) -> dict[str, Any]:
    """Load and check ``DIR/manifest.json`` (seal, format version, kind, shard list).

    The manifest carries its own SHA-256 (:mod:`simlab.integrity`), so a hand
    edit or a flipped byte is refused instead of believed. DatasetError naming
    the problem otherwise.
    """
    from simlab.integrity import read_sealed_json

    path = Path(root) / MANIFEST
    if not Path(root).is_dir():
        raise DatasetError(f"{root}: no such dataset directory")
    if not path.exists():
        raise DatasetError(f"{path}: missing manifest (collection incomplete? rerun with --resume)")
    man = read_sealed_json(path, DatasetError, "dataset manifest")
    fv = man.get("format_version")
    if not isinstance(fv, int) or isinstance(fv, bool) or "kind" not in man:
        raise DatasetError(f"{path}: not a simlab manifest")
    if fv > FORMAT_VERSION:
        raise DatasetError(f"{path}: format version {fv} is newer than this "
                           f"simlab reads ({FORMAT_VERSION}); upgrade simlab")
    if kind is not None and man["kind"] != kind:
        raise DatasetError(f"{path}: dataset kind {man['kind']!r}, expected {kind!r}")
    shards = man.get("shards")
    ok = isinstance(shards, list) and all(
        isinstance(x, dict) and isinstance(x.get("file"), str) and isinstance(x.get("sha256"), str)
        and all(isinstance(x.get(k), int) and x[k] >= 0 for k in ("start", "stop", "bytes")) for x in shards)
    if not ok:
        raise DatasetError(f"{path}: invalid shard list")
    return man


def check_shards(root: str | os.PathLike[str], man: dict[str, Any], verify: bool = False) -> None:
    """Check every shard listed in the manifest exists with its recorded size (and SHA-256 if ``verify``).

    Without ``verify`` the SHA-256 is still checked, lazily, the first time a
    reader opens each shard (:func:`open_h5` with ``sha256``).
    """
    for s in man.get("shards", []):
        p = Path(root) / s["file"]
        if not p.exists():
            raise DatasetError(f"{p}: shard listed in the manifest is missing")
        size = p.stat().st_size
        if size != s["bytes"]:
            raise DatasetError(f"{p}: size {size} B differs from the manifest's {s['bytes']} B (truncated?)")
        if verify:
            verify_file(p, s["sha256"])


_VERIFIED: dict[tuple[str, int, int], str] = {}
"""(path, size, mtime_ns) -> sha256 of files already hashed by this process."""


def verify_file(path: str | os.PathLike[str], sha256: str, error: type[Exception] = DatasetError) -> None:
    """Raise ``error`` naming ``path`` unless its SHA-256 is ``sha256`` (cached per process)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if _VERIFIED.get(key) != sha256:
        if sha256_file(p) != sha256:
            raise error(f"{p}: checksum differs from the manifest's (corrupt or replaced)")
        _VERIFIED[key] = sha256


# ---- shared reader of transition datasets -------------------------------------------------
TRANSITION_KEYS = ("obs", "actions", "rewards", "terminations", "truncations", "level_seed", "episode_id")
"""Per-transition arrays of a transition shard (plus the per-segment ``final_obs``)."""
EPISODE_STEP_KEYS = ("actions", "rewards", "terminations", "truncations", "level_seed")
"""Per-step arrays of the episode dicts of :meth:`ShardedTransitions.episodes`."""


def read_shard_range(root: str | os.PathLike[str], shards: list[dict[str, Any]], total: int, start: int,
                     stop: int | None, read: Any) -> list[Any]:
    """The parts of items ``[start, stop)`` of a sharded dataset, one per shard they touch, in order.

    ``shards`` are manifest records (``start``, ``stop`` item indices); ``read(shard, lo, hi)``
    reads items ``lo..hi`` counted from that shard's start. DatasetError (one line) for a range
    outside ``0..total``. The one range loop of every sharded reader (videos, transitions).
    """
    stop = total if stop is None else stop
    if not 0 <= start <= stop <= total:
        raise DatasetError(f"{root}: range [{start}, {stop}) outside 0..{total}")
    parts = []
    for s in shards:
        lo, hi = max(start, s["start"]), min(stop, s["stop"])
        if lo < hi:
            parts.append(read(s, lo - s["start"], hi - s["start"]))
    return parts


class ShardedTransitions:
    """Reader base of the transition datasets (procgen, gym-image).

    Shards hold consecutive transitions ``[start, stop)``; every episode segment of a
    shard is a run of equal ``episode_id`` followed by one ``final_obs`` frame (the
    observation after its last step). On open the manifest (kind, format version,
    config, the subclass's fields) and every shard's size (``verify=True``: SHA-256
    too) are checked, and the shard ranges must cover ``0..count``. Errors are
    :class:`DatasetError` naming the file.

    Subclass hooks:
        kind: manifest and shard ``kind``.
        label: names the dataset in "invalid <label> manifest" errors.
        config_class: built from the manifest's ``config`` (``self.config``).
        step_keys: per-transition arrays of a shard.
        _parse_manifest(man): the subclass's other manifest fields (runs after
            ``config``; KeyError/TypeError/ValueError/ConfigError become DatasetError).
        _read(s, sel, keys): arrays ``keys`` of shard ``s`` at ``sel`` (a slice or
            sorted unique shard-local indices); default: sliced from :meth:`_read_all`.
        _read_all(s): every array of shard ``s`` (``step_keys`` and ``final_obs``);
            default: read as stored, unchecked.
    """

    kind: str
    label: str
    config_class: Any
    step_keys: tuple[str, ...] = TRANSITION_KEYS
    observation_shape: tuple[int, ...]

    def __init__(self, root: str | Path, verify: bool = False) -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root, self.kind)
        man_path = self.root / MANIFEST
        try:
            self.config = self.config_class(**self.manifest["config"])
            self._parse_manifest(self.manifest)
            self.shards = list(self.manifest["shards"])
            count = int(self.manifest["count"])
        except (KeyError, TypeError, ValueError, ConfigError) as e:
            raise DatasetError(f"{man_path}: invalid {self.label} manifest ({type(e).__name__}: {e})") from None
        check_shards(self.root, self.manifest, verify=verify)
        if not self.shards or [s["start"] for s in self.shards] != [0, *[s["stop"] for s in self.shards[:-1]]] \
                or self.shards[-1]["stop"] != count:
            raise DatasetError(f"{man_path}: shard ranges do not cover 0..{count}")
        self._starts = np.array([s["start"] for s in self.shards], np.int64)

    def _parse_manifest(self, man: dict[str, Any]) -> None:
        """Set the subclass's attributes from manifest fields other than ``config``."""

    def __len__(self) -> int:
        """Number of transitions."""
        return int(self.manifest["count"])

    @property
    def num_episodes(self) -> int:
        """Number of episode segments."""
        return int(self.manifest["episodes"])

    @property
    def env_id(self) -> str:
        """Env id of the dataset (the env its policies are evaluated in)."""
        return str(self.manifest["env_id"])

    # ---- reading -----------------------------------------------------------------------------
    def _open(self, s: dict[str, Any]):  # -> h5py.File
        """Open shard ``s``, checking its kind and transition range against the manifest."""
        path = self.root / s["file"]
        f = open_h5(path, s["sha256"])
        kind = f.attrs.get("kind")
        if kind != self.kind:
            f.close()
            raise DatasetError(f"{path}: not a {self.kind} shard (kind {kind!r})")
        if int(f.attrs.get("start", -1)) != s["start"] or int(f.attrs.get("stop", -1)) != s["stop"]:
            f.close()
            raise DatasetError(f"{path}: transition range differs from the manifest's")
        return f

    def _read_all(self, s: dict[str, Any]) -> dict[str, np.ndarray]:
        with self._open(s) as f:
            return {k: read_h5_array(f, k) for k in (*self.step_keys, "final_obs")}

    def _read(self, s: dict[str, Any], sel: Any, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
        d = self._read_all(s)
        return {k: d[k][sel] for k in keys}

    def load(self, start: int = 0, stop: int | None = None,
             keys: tuple[str, ...] = TRANSITION_KEYS) -> dict[str, np.ndarray]:
        """Transitions ``[start, stop)`` as a dict of arrays (see the module docstring)."""
        parts = read_shard_range(self.root, self.shards, len(self), start, stop,
                                 lambda s, lo, hi: self._read(s, slice(lo, hi), keys))
        if not parts:
            return {k: np.empty((0,), np.int64) for k in keys}
        return {k: np.concatenate([p[k] for p in parts]) for k in keys}

    def get(self, indices: np.ndarray, keys: tuple[str, ...] = ("obs", "actions")) -> dict[str, np.ndarray]:
        """Transitions at arbitrary ``indices`` (any order, repeats allowed), in that order."""
        idx = np.asarray(indices, np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise DatasetError(f"{self.root}: index outside 0..{len(self)}")
        shard_of = np.searchsorted(self._starts, idx, side="right") - 1
        out: dict[str, np.ndarray] = {}
        for si in np.unique(shard_of):
            s = self.shards[si]
            mask = shard_of == si
            uniq, inv = np.unique(idx[mask] - s["start"], return_inverse=True)
            part = self._read(s, uniq, keys)
            for k, v in part.items():
                if k not in out:
                    out[k] = np.empty((len(idx), *v.shape[1:]), v.dtype)
                out[k][mask] = v[inv]
        if not out:
            return {k: np.empty((0,)) for k in keys}
        return out

    def episodes(self) -> Iterator[dict[str, Any]]:
        """Every episode segment in order: ``observations`` ``(T+1, *observation_shape)`` incl. the
        observation after the last step, ``actions`` (``(T,)`` ids or ``(T, d)`` vectors),
        ``rewards`` / ``terminations`` / ``truncations`` / ``level_seed`` ``(T,)``, ``episode_id``
        (int) and ``cut`` (True when the segment ended without termination/truncation: cut by the
        end of its shard).
        """
        for s in self.shards:
            d = self._read_all(s)
            ids = d["episode_id"]
            bounds = np.flatnonzero(np.diff(ids)) + 1
            starts, stops = np.concatenate([[0], bounds]), np.concatenate([bounds, [len(ids)]])
            if len(starts) != len(d["final_obs"]) or len(ids) != s["stop"] - s["start"]:
                raise DatasetError(f"{self.root / s['file']}: episode boundaries inconsistent with final_obs")
            for e, (lo, hi) in enumerate(zip(starts, stops)):
                yield {
                    "episode_id": int(ids[lo]),
                    "observations": np.concatenate([d["obs"][lo:hi], d["final_obs"][e:e + 1]]),
                    **{k: d[k][lo:hi] for k in EPISODE_STEP_KEYS},
                    "cut": not bool(d["terminations"][hi - 1] or d["truncations"][hi - 1]),
                }


# ---- shared logic of sharded collectors ---------------------------------------------------
@dataclass
class CollectResult:
    """What one collection run (one worker) did."""

    out: str
    written: list[int] = field(default_factory=list)
    """Shards this run wrote."""
    skipped: list[int] = field(default_factory=list)
    """Shards already present (resume) and skipped."""
    rewritten: list[int] = field(default_factory=list)
    """Shards found damaged on resume (size or checksum differ from their sidecar, or unreadable) and
    written again (also in ``written``)."""
    complete: bool = False
    """Every shard of the dataset exists and the manifest is written."""
    seconds: float = 0.0
    items_written: int = 0
    """Videos or transitions written by this run."""


CollectRecord = dict[str, Any]
RECORD_FILE = "collect_config.json"


def _flat(record: CollectRecord) -> dict[str, Any]:
    """One level of nesting flattened (``config`` keys plus the other top-level entries)."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, dict):
            out.update(v)
        else:
            out[k] = v
    return out


def claim_dataset_dir(root: str | os.PathLike[str], record: CollectRecord, resume: bool) -> None:
    """Make ``root`` ready for a collection described by ``record`` (JSON-able).

    A directory that already holds a dataset is refused unless ``resume``
    (workers of one sharded collection pass ``resume=True``: sharing is not a
    clash), and a resume must describe the same collection; the error names the
    keys that differ. Then ``collect_config.json`` is written (atomically).
    """
    from simlab.paths import check_output_dir

    root = check_output_dir(root)
    found = root.exists() and ((root / MANIFEST).exists() or any((root / SHARD_DIR).glob("shard-*.h5")))
    if found:
        if not resume:
            raise ConfigError(f"{root} already holds a dataset; pass --resume to continue it or choose another --out")
        rec_path = root / RECORD_FILE
        if rec_path.exists():
            try:
                old = json.loads(rec_path.read_text())
            except json.JSONDecodeError:
                raise DatasetError(f"{rec_path}: not valid JSON") from None
            if old != json.loads(json.dumps(record)):
                a, b = _flat(old), _flat(json.loads(json.dumps(record)))
                diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
                raise ConfigError(f"{root} was collected with a different config ({', '.join(diff)} differ); "
                                  "use the same arguments to resume or another --out")
        clean_orphans(root)
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / RECORD_FILE, record)


def shard_intact(root: str | os.PathLike[str], j: int) -> bool:
    """Whether finished shard ``j`` is as it was written: its size and SHA-256 equal its sidecar's, or
    (no readable sidecar: a kill between the shard's rename and the sidecar's write) HDF5 opens it."""
    root = Path(root)
    path = root / shard_name(j)
    side = root / (shard_name(j)[:-3] + ".json")
    try:
        info = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        info = None
    if isinstance(info, dict) and isinstance(info.get("sha256"), str):
        return info.get("bytes") == path.stat().st_size and info["sha256"] == sha256_file(path)
    import h5py

    try:
        with h5py.File(path, "r") as f:
            f.visit(lambda name: None)
        return True
    except OSError:
        return False


def discard_damaged_shard(root: str | os.PathLike[str], j: int) -> bool:
    """Delete shard ``j`` and its sidecar if the shard exists but is not :func:`shard_intact`; returns
    whether it did. Shards are renamed into place whole, so such a shard was damaged after it was
    written: a resumed collection writes it again (a rollout is a pure function of the config and
    ``j``, so the new shard is byte-identical to the lost one) instead of believing it."""
    root = Path(root)
    path = root / shard_name(j)
    if not path.exists() or shard_intact(root, j):
        return False
    path.unlink()
    (root / (shard_name(j)[:-3] + ".json")).unlink(missing_ok=True)
    return True


def shard_record(root: str | os.PathLike[str], j: int, start: int, stop: int,
                 extra: Any = None, rehash: bool = False) -> dict[str, Any]:
    """Size/checksum record of finished shard ``j``, cached in a sidecar JSON next to it.

    The sidecar is recomputed when missing or stale (a kill between the shard's
    rename and the sidecar's write), and its SHA-256 is never trusted for the
    manifest: :func:`finalize_manifest` passes ``rehash``. ``extra(path) -> dict``
    adds fields.
    """
    root = Path(root)
    path = root / shard_name(j)
    side = root / (shard_name(j)[:-3] + ".json")
    size = path.stat().st_size
    if side.exists():
        try:
            info = json.loads(side.read_text())
            if isinstance(info, dict) and info.get("bytes") == size:
                if not rehash:
                    return info
                if info.get("sha256") == sha256_file(path):
                    return info
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    info = {"file": shard_name(j), "start": start, "stop": stop, **(extra(path) if extra else {}),
            "bytes": size, "sha256": sha256_file(path)}
    write_json_atomic(side, info)
    return info


def collect_shards(root: str | os.PathLike[str], cfg: Any, shard: tuple[int, int], resume: bool,
                   record: dict[str, Any], attrs: dict[str, Any], rollout: Any, compress: set[str],
                   extra: Any, finalize: Any, desc: str, unit: str, progress: bool = True) -> CollectResult:
    """The loop every sharded collector shares: write shards ``j`` with ``j % n == i`` for
    ``shard=(i, n)``, skipping finished ones, then the manifest once every shard exists.

    Args:
        root: the dataset directory; claimed first with ``record`` (what must match to resume).
        cfg: the collector's config, with ``num_shards()`` and ``shard_range(j) -> (start, stop)``.
        resume: skip finished shards (implied for ``n > 1`` workers sharing ``root``).
        attrs: root attributes of every shard (plus ``shard``, ``start``, ``stop``).
        rollout: ``rollout(j, tick) -> arrays`` of shard ``j`` (a pure function of ``(cfg, j)``);
            it may call ``tick(k)`` to advance the progress bar by ``k`` items as it goes.
        compress, extra: passed to :func:`write_h5_shard` / :func:`shard_record`.
        finalize: ``finalize() -> bool`` writes the manifest when the dataset is complete.
        desc, unit: the progress bar's label and item name.
    """
    import time

    from tqdm import tqdm

    root = Path(root)
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"shard {i}/{n}: need 0 <= i < n and n >= 1")
    claim_dataset_dir(root, record, resume or n > 1)
    todo = [j for j in range(cfg.num_shards()) if j % n == i]
    res = CollectResult(out=str(root))
    t0 = time.perf_counter()
    total = sum(cfg.shard_range(j)[1] - cfg.shard_range(j)[0] for j in todo)
    ticked = [0]  # items the current shard's rollout has already shown on the bar
    with tqdm(total=total, desc=desc, unit=unit, disable=not progress, leave=False, dynamic_ncols=True) as bar:

        def tick(k: int = 1) -> None:
            ticked[0] += k
            bar.update(k)

        for j in todo:
            start, stop = cfg.shard_range(j)
            path = root / shard_name(j)
            ticked[0] = 0
            if discard_damaged_shard(root, j):
                res.rewritten.append(j)
            if not path.exists():
                arrays = rollout(j, tick)
                write_h5_shard(path, arrays, {**attrs, "shard": j, "start": start, "stop": stop},
                               compress=compress)
                res.written.append(j)
                res.items_written += stop - start
            else:
                res.skipped.append(j)
            shard_record(root, j, start, stop, extra=extra)
            bar.update(max(0, stop - start - ticked[0]))
    res.seconds = time.perf_counter() - t0
    res.complete = finalize()
    return res


def finalize_manifest(root: str | os.PathLike[str], num_shards: int, shard_range: Any,
                      fields: dict[str, Any], extra: Any = None) -> bool:
    """Write ``manifest.json`` once every shard exists; returns whether the dataset is complete.

    ``shard_range(j) -> (start, stop)``; ``fields`` are the collector's own
    manifest entries (kind, config, counts...); ``format_version``, ``shards``
    and ``bytes`` are added here.
    """
    root = Path(root)
    if not all((root / shard_name(j)).exists() for j in range(num_shards)):
        return False
    from simlab.integrity import write_sealed_json

    shards = [shard_record(root, j, *shard_range(j), extra=extra, rehash=True) for j in range(num_shards)]
    man = {"format_version": FORMAT_VERSION, **fields, "shards": shards,
           "bytes": int(sum(s["bytes"] for s in shards))}
    write_sealed_json(root / MANIFEST, man)
    return True
