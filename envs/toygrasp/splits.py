"""The object sets of toy grasping as :class:`~simlab.splits.Split` data.

- ``toys-train``: toy seeds ``0 .. N-1`` (N = :data:`TRAIN_TOYS` by default).
- ``toys-test``: toy seeds from :data:`TEST_TOY_START` on (unseen toys of the
  same distribution).
- ``objects``: the unseen pybullet_data objects
  (:data:`~simlab.envs.toygrasp.objects.OBJECT_NAMES`).

An object is named ``toy/<seed>`` or by its object name (``duck``,
``random/010``); :func:`body_of` builds any of them.
"""

from __future__ import annotations

from simlab.envs.toygrasp.objects import OBJECT_NAMES, object_body
from simlab.envs.toygrasp.shapes import BodySpec
from simlab.envs.toygrasp.toys import toy_body
from simlab.errors import ConfigError
from simlab.splits import Split

TRAIN_TOYS = 250
TEST_TOY_START = 100_000
TEST_TOYS = 1000
SPLIT_NAMES = ("toys-train", "toys-test", "objects")


def toygrasp_splits(train_toys: int = TRAIN_TOYS) -> dict[str, Split]:
    """The three splits (``train_toys`` sets the size of ``toys-train``, for scaling curves)."""
    if not 1 <= train_toys <= TEST_TOY_START:
        raise ConfigError(f"train_toys must be in 1..{TEST_TOY_START}, got {train_toys}")
    return {s.name: s for s in (
        Split("toys-train", "train", seeds=(0, train_toys), description=f"toy seeds 0-{train_toys - 1}"),
        Split("toys-test", "id_test", seeds=(TEST_TOY_START, TEST_TOYS),
              description=f"unseen toys, seeds {TEST_TOY_START}-{TEST_TOY_START + TEST_TOYS - 1}"),
        Split("objects", "ood_test", categorical={"object": OBJECT_NAMES},
              description="unseen pybullet_data objects (duck, teddy, mug, lego, jenga, domino, 100 random_urdfs)"),
    )}


def split_objects(split: str, train_toys: int = TRAIN_TOYS) -> tuple[str, ...]:
    """Object names of a split, in order (``toy/<seed>`` for toys)."""
    splits = toygrasp_splits(train_toys)
    if split not in splits:
        raise ConfigError(f"unknown toygrasp split {split!r}; one of {', '.join(SPLIT_NAMES)}")
    s = splits[split]
    if s.seeds is not None:
        start, count = s.seeds
        return tuple(f"toy/{i}" for i in range(start, start + count))
    return tuple(s.categorical["object"])


def body_of(name: str) -> BodySpec:
    """The body of an object name (``toy/<seed>`` or an unseen object's name); ConfigError if unknown."""
    if name.startswith("toy/"):
        try:
            seed = int(name[4:])
        except ValueError:
            raise ConfigError(f"bad toy name {name!r}; expected toy/<seed>") from None
        return toy_body(seed)
    return object_body(name)
