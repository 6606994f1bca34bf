"""Checked CLI option kinds shared by every ``simlab`` command.

A command declares ``out: Annotated[Path, out_dir("Run directory.")]`` or
``seed: Annotated[int, seed_opt()]`` and inherits the checks: the raw text is
parsed here (``--out ''`` is seen as empty, not as ``.``), and a bad value
fails before the command body runs, with click's one-line "Invalid value for
'--out': ..." (exit 2 through :func:`simlab.cli.main`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from simlab.errors import SimlabError

MAX_SEED = 2**32 - 1
"""Largest seed accepted (numpy, torch and gymnasium all take 0..2**32-1)."""


def _parser(check: Callable[[str], Any], kind: str) -> Callable[[str], Any]:
    """A typer ``parser`` running ``check`` on the raw text; ``kind`` tags it for the CLI's
    structural test (every ``--out`` is an ``out_dir``/``out_file``, every float ``finite``)."""
    def parse(text: Any) -> Any:
        if not isinstance(text, str):  # a default value already of the right type
            text = str(text)
        try:
            return check(text)
        except SimlabError as e:
            raise typer.BadParameter(str(e)) from None
        except (ValueError, OverflowError):
            raise typer.BadParameter(f"{text!r} is not valid here") from None

    parse.__name__ = getattr(check, "__name__", "parse")
    parse.simlab_kind = kind  # type: ignore[attr-defined]
    return parse


def _out_dir_text(text: str) -> Path:
    from simlab.paths import check_output_dir

    return check_output_dir(text, option="path")


def out_dir(help: str, name: str = "--out") -> Any:
    """An output directory option: not empty, not a file, creatable/writable."""
    return typer.Option(name, help=help, parser=_parser(_out_dir_text, "out_dir"), metavar="DIR")


def out_file(help: str, suffixes: tuple[str, ...], name: str = "--out") -> Any:
    """An output file option with one of ``suffixes``: not empty, not a directory, writable."""
    from simlab.paths import check_output_file

    def check(text: str) -> Path:
        return check_output_file(text, option="path", suffixes=suffixes)

    return typer.Option(name, help=help, parser=_parser(check, "out_file"), metavar="FILE")


def seed_opt(help: str = "Seed.", name: str = "--seed") -> Any:
    """A seed in ``0..2**32-1``."""
    return typer.Option(name, help=help, min=0, max=MAX_SEED)


def count_opt(help: str, minimum: int = 1, maximum: int | None = None, name: str | None = None) -> Any:
    """An integer count in ``[minimum, maximum]``."""
    args = (name,) if name else ()
    return typer.Option(*args, help=help, min=minimum, max=maximum)


def finite_float(text: str, lo: float | None = None, hi: float | None = None, open_lo: bool = False,
                 open_hi: bool = False) -> float:
    """``float(text)`` checked by :func:`simlab.validate.check_float` (finite, in range)."""
    from simlab.validate import check_float

    try:
        x = float(text)
    except ValueError:
        raise typer.BadParameter(f"expected a number, got {text!r}") from None
    return check_float("the value", x, lo, hi, lo_open=open_lo, hi_open=open_hi)


def positive_float_opt(help: str, maximum: float | None = None, name: str | None = None) -> Any:
    """A finite float > 0 (and <= ``maximum``)."""
    args = (name,) if name else ()

    def check(text: str) -> float:
        return finite_float(text, 0.0, maximum, open_lo=True)

    return typer.Option(*args, help=help, parser=_parser(check, "finite"), metavar="FLOAT")


def rate_opt(help: str, name: str | None = None) -> Any:
    """A finite float in ``[0, 1)`` (dropout rates); ``None`` default allowed."""
    args = (name,) if name else ()

    def check(text: str) -> float:
        return finite_float(text, 0.0, 1.0, open_hi=True)

    return typer.Option(*args, help=help, parser=_parser(check, "finite"), metavar="FLOAT")


def fraction_opt(help: str, name: str | None = None) -> Any:
    """A finite float in ``[0, 1]`` (fractions of demos, probabilities)."""
    args = (name,) if name else ()

    def check(text: str) -> float:
        return finite_float(text, 0.0, 1.0)

    return typer.Option(*args, help=help, parser=_parser(check, "finite"), metavar="FLOAT")


def comma_list(text: str, name: str, allow_empty: bool = False) -> list[str]:
    """The items of a comma-separated option value, stripped. ConfigError (one line) for an empty
    item (``train,,test``: a typo, not a request to skip something) and, unless ``allow_empty``,
    for a blank value (``--splits ''`` names nothing to run)."""
    from simlab.errors import ConfigError

    if not text.strip():
        if allow_empty:
            return []
        raise ConfigError(f"{name} is empty; give comma-separated values")
    items = [x.strip() for x in text.split(",")]
    if any(not x for x in items):
        raise ConfigError(f"{name} {text!r} has an empty item (two commas, or a comma at an end)")
    return items


def check_option_keys(overrides: list[str] | None, owned: dict[str, str]) -> None:
    """ConfigError (one line) when a ``key=value`` override sets a field that a command option owns
    (``owned``: ``{field: "--option"}``): the option would silently win over it."""
    from simlab.errors import ConfigError

    for ov in overrides or []:
        key = ov.split("=", 1)[0].strip()
        if key in owned:
            raise ConfigError(f"{ov!r}: {key} is set with {owned[key]}, not as an override")


def int_selection(text: str, name: str, lo: int, hi: int, max_count: int | None = None) -> list[int]:
    """``"a:b"`` (a..b-1; an empty ``a`` is ``lo``, an empty ``b`` is ``hi``) or ``"3,7,9"`` -> the
    integers, each in ``[lo, hi)``, at most ``max_count`` of them. ConfigError (one line) when
    malformed, empty, out of range or too many; a huge range is refused before it is built."""
    from simlab.errors import ConfigError

    need = f"{name} {text!r}: need integers in {lo}..{hi - 1}" + (f", at most {max_count}" if max_count else "")
    try:
        if ":" in text:
            a_s, b_s = text.split(":")
            a = int(a_s) if a_s.strip() else lo
            b = int(b_s) if b_s.strip() else hi
            if not lo <= a < b <= hi or (max_count is not None and b - a > max_count):
                raise ConfigError(need)
            return list(range(a, b))
        out = [int(x) for x in comma_list(text, name)]
    except ConfigError:
        raise
    except ValueError:
        raise ConfigError(f"{name} must look like 0:16 or 0,5,9, got {text!r}") from None
    if any(not lo <= i < hi for i in out) or (max_count is not None and len(out) > max_count):
        raise ConfigError(need)
    return out
