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


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp``."""
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


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build a config dataclass from a (possibly partial) mapping, checking keys and types."""
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {}
    for k, v in data.items():
        if k not in names:
            raise ConfigError(f"unknown config key {prefix + k!r}; valid keys: {', '.join(sorted(names))}")
        kwargs[k] = _coerce(v, hints[k], prefix + k)
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


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=1e-3"`` -> ``(["a", "b"], 0.001)``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def resolve(cls: type[T], group: str, presets: list[str] | tuple[str, ...] = (),
            overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Defaults of ``cls`` <- each preset in order <- each ``key=value`` override."""
    data = to_dict(cls())
    for name in presets:
        data = _merge(data, load_preset(group, name))
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
    """Write a config dataclass as YAML (atomic)."""
    from simlab.data import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Load a config dataclass from YAML, checking keys and types."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read config ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: config must be a mapping")
    return from_dict(cls, data)
