"""Typed configs: dataclasses, named YAML presets applied in order, then ``key=value`` overrides.

The pattern is DreamerV3's: ``resolve(Cfg, presets=["cpu", "debug"],
overrides=["vae.lr=3e-4", "seeds=3"])`` starts from the dataclass defaults,
applies each preset (a YAML mapping from ``assets/presets/<group>/<name>.yaml``
or a path), then the overrides, checking every key and value type. Errors name
the bad key or value (:class:`simlab.errors.ConfigError`). The resolved config
is saved as YAML in the run directory and loads back into the same class.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from simlab.errors import ConfigError

T = TypeVar("T")
PRESET_ROOT = Path(__file__).resolve().parent.parent / "assets" / "presets"


def _preset_roots() -> list[Path]:
    roots = [PRESET_ROOT]
    try:  # installed (non-editable) layout: assets ship as simlab.assets
        from importlib.resources import files

        roots.append(Path(str(files("simlab.assets") / "presets")))
    except (ModuleNotFoundError, TypeError):
        pass
    return roots


def available_presets(group: str) -> list[str]:
    """Preset names of a group (``assets/presets/<group>/*.yaml``)."""
    names: set[str] = set()
    for root in _preset_roots():
        names.update(p.stem for p in (root / group).glob("*.yaml"))
    return sorted(names)


def load_preset(group: str, name: str) -> dict[str, Any]:
    """Load a preset mapping by name (or from a ``.yaml`` path)."""
    cands = [Path(name)] if name.endswith((".yaml", ".yml")) else [r / group / f"{name}.yaml" for r in _preset_roots()]
    for p in cands:
        if p.exists():
            try:
                data = yaml.safe_load(p.read_text()) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"preset {p}: invalid YAML ({e})") from None
            if not isinstance(data, dict):
                raise ConfigError(f"preset {p}: must be a mapping of config keys")
            return data
    raise ConfigError(f"unknown preset {name!r} for {group}; available: {', '.join(available_presets(group)) or 'none'}")


class OverrideText(str):
    """The raw text of a ``key=value`` override: parsed against the field's declared type."""


_INT_RE = re.compile(r"[+-]?\d(_?\d)*")
_BOOLS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
_NONES = {"none", "null", "~"}


def _unquote(text: str) -> str:
    t = text.strip()
    return t[1:-1] if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"" else t


def _parse_text(text: str, tp: Any, key: str) -> Any:
    """Parse override text as the declared type ``tp`` (not as YAML: ``lr=3e-4`` is a float,
    ``train_levels=10:50`` a string, never a base-60 integer)."""
    origin = typing.get_origin(tp)
    t = text.strip()
    if tp is Any or origin is dict:
        try:
            return yaml.safe_load(t) if t else ""
        except yaml.YAMLError:
            return text
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and t.lower() in _NONES:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(_parse_text(text, a, key), a, key)
            except ConfigError:
                continue
        raise ConfigError(f"config key {key!r}: {text!r} does not fit {_type_name(tp)}")
    if origin is typing.Literal:
        for choice in typing.get_args(tp):
            if str(choice) == _unquote(t):
                return choice
        raise ConfigError(f"config key {key!r}: {text!r} is not one of {list(typing.get_args(tp))}")
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        inner = args[0] if args else Any
        body = t[1:-1] if t.startswith("[") and t.endswith("]") else t
        return [_parse_text(x, inner, key) for x in body.split(",") if x.strip()]
    if tp is bool:
        if t.lower() in _BOOLS:
            return _BOOLS[t.lower()]
        raise ConfigError(f"config key {key!r}: expected true/false, got {text!r}")
    if tp is int:
        if _INT_RE.fullmatch(t):
            return int(t)
        try:
            f = float(t)  # 1e6 is a fine way to write a step count
        except ValueError:
            f = math.nan
        if math.isfinite(f) and f.is_integer() and abs(f) < 2**63:
            return int(f)
        raise ConfigError(f"config key {key!r}: expected an integer, got {text!r}")
    if tp is float:
        try:
            return float(t)
        except ValueError:
            raise ConfigError(f"config key {key!r}: expected a number, got {text!r}") from None
    if tp is str:
        return _unquote(text)
    if dataclasses.is_dataclass(tp):
        raise ConfigError(f"config key {key!r} is a group; set its fields with {key}.<field>=value")
    return text


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp`` (override text is parsed first)."""
    if isinstance(value, OverrideText) or (tp in (int, float) and isinstance(value, str)):
        value = _parse_text(value, tp, key)  # YAML 1.1 reads 3e-4 in a preset file as a string
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errs = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errs.append(str(e))
        raise ConfigError(f"config key {key!r}: {value!r} does not fit {tp}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"config key {key!r}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        seq = [_coerce(v, inner, key) for v in value]
        return tuple(seq) if origin is tuple else seq
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"config key {key!r}: {value!r} is not a finite number")
            return float(value)
        raise ConfigError(f"config key {key!r}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"config key {key!r}: expected a string, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r}: expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


MAX_SEED = 2**32 - 1
"""Largest seed a config accepts (numpy, torch and gymnasium all take 0..2**32-1)."""

# Ranges every config class shares by field-name convention, checked by :func:`from_dict`
# before the class's own ``__post_init__``: (name predicate, lo, hi, lo_open, what).
_RULES: tuple[tuple[Any, float | None, float | None, bool, str], ...] = (
    (lambda n: n == "seed" or n.endswith("_seed"), 0, MAX_SEED, False, "a seed"),
    (lambda n: n == "lr" or n.endswith("_lr"), 0.0, 10.0, True, "a learning rate"),
    (lambda n: n.endswith("torch_threads"), 0, 1024, False, "a thread count (0 = automatic)"),
    (lambda n: n.endswith("batch_size"), 1, 2**20, False, "a batch size"),
    (lambda n: n in ("num_envs", "eval_num_envs"), 1, 16384, False, "a number of envs"),
    (lambda n: n in ("z_dim", "hidden", "width", "vae_width", "features_dim", "mixtures"), 1, 65536, False,
     "a layer size"),
    (lambda n: n in ("gamma", "gae_lambda", "ema_decay", "open_loop", "rnn_open_loop")
     or n.endswith("dropout"), 0.0, 1.0, False, "a fraction"),
    (lambda n: n.endswith(("_weight", "_coef")) or n in ("weight_decay", "grad_clip", "max_grad_norm",
                                                          "kl_tolerance"), 0.0, None, False, "a weight"),
    (lambda n: n in ("sigma0", "temperature"), 0.0, None, True, "a scale"),
)


def check_common_ranges(values: dict[str, Any], prefix: str = "") -> None:
    """ConfigError (one line) when a field breaks the range its name implies (see ``_RULES``)."""
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        for match, lo, hi, lo_open, what in _RULES:
            if match(k):
                if (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and v > hi):
                    lo_t = "" if lo is None else f"{'(' if lo_open else '['}{lo:g}, "
                    hi_t = "inf)" if hi is None else f"{hi:g}]"
                    raise ConfigError(f"config key {prefix + k!r} is {what}, must be in {lo_t or '('}{hi_t}, "
                                      f"got {v!r}")
                break


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build a config dataclass from a (possibly partial) mapping, checking keys, types and the
    ranges field names imply (seeds >= 0, learning rates > 0, fractions in [0, 1]...)."""
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {}
    for k, v in data.items():
        if k not in names:
            raise ConfigError(f"unknown config key {prefix + k!r}; valid keys: {', '.join(sorted(names))}")
        kwargs[k] = _coerce(v, hints[k], prefix + k)
    check_common_ranges(kwargs, prefix)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"config {cls.__name__}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (JSON/YAML types only: tuples become lists) of a config dataclass."""
    import json

    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _merge(base: dict[str, Any], upd: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in upd.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_override(text: str) -> tuple[list[str], OverrideText]:
    """``"a.b=1e-3"`` -> ``(["a", "b"], OverrideText("1e-3"))``.

    The value stays text until :func:`from_dict` parses it against the declared
    type of field ``a.b`` (see :func:`_parse_text`).
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    return key.split("."), OverrideText(raw)


def resolve(cls: type[T], group: str, presets: list[str] | tuple[str, ...] = (),
            overrides: list[str] | tuple[str, ...] = (), builtin: dict[str, dict[str, Any]] | None = None) -> T:
    """Defaults of ``cls`` <- each preset in order <- each ``key=value`` override.

    A preset name is looked up in ``builtin`` (presets defined in code) first, then as
    ``assets/presets/<group>/<name>.yaml`` or a path; an unknown name lists both.
    """
    data = to_dict(cls())
    for name in presets:
        if builtin and name in builtin:
            data = _merge(data, builtin[name])
            continue
        try:
            data = _merge(data, load_preset(group, name))
        except ConfigError as e:
            if builtin is None or "unknown preset" not in str(e):
                raise  # a preset file that exists but is malformed
            raise ConfigError(f"unknown {group} preset {name!r}; built-in: {', '.join(builtin)}") from None
    for ov in overrides:
        path, value = parse_override(ov)
        d = data
        for p in path[:-1]:
            if not isinstance(d.get(p), dict):
                raise ConfigError(f"unknown config key {'.'.join(path)!r}")
            d = d[p]
        if path[-1] not in d:
            raise ConfigError(f"unknown config key {'.'.join(path)!r}; valid keys: {', '.join(sorted(d))}")
        d[path[-1]] = value
    return from_dict(cls, data)


def save_yaml(cfg: Any, path: str | Path) -> None:
    """Write a config dataclass as sealed YAML (first line ``# sha256: ...``, atomic)."""
    from simlab.data import atomic_path
    from simlab.integrity import seal_yaml

    with atomic_path(path) as tmp:
        tmp.write_text(seal_yaml(yaml.safe_dump(to_dict(cfg), sort_keys=False)))


def load_yaml(cls: type[T], path: str | Path, sealed: bool = False) -> T:
    """Load a config dataclass from YAML, checking keys and types.

    A sealed file (written by :func:`save_yaml`) must match its checksum; with
    ``sealed`` an unsealed file is refused too (run directories).
    """
    from simlab.integrity import unseal_yaml

    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror or e})") from None
    text = unseal_yaml(raw, path, ConfigError, required=sealed)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: config must be a mapping")
    return from_dict(cls, data)
