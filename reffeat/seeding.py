"""Every random stream of reffeat, named in one table and derived from one seed here.

No other module makes a Generator (``default_rng``, ``RandomState``,
``SeedSequence``, ``np.random.seed``) or derives a seed by arithmetic
(``seed + 1``, ``seed + 7 + i``): it asks for a stream by name and key,
``rng(seed, name, *key)``. ``tests/test_seeding.py`` holds both rules.

The derivation (one way, for every stream)::

    seed_sequence(seed, name, *key) = SeedSequence(entropy=seed,
                                                   spawn_key=(STREAMS[name].id, *indices(key)))

``STREAMS`` is the one table below: name -> (id, kind of key). An id is fixed
forever: a stream is never renumbered and a retired id is never reused (a
frozen copy of the table in the tests fails on any change). New streams take
the next free id. Ids 0–3 are the synthetic Problem's four streams in the
order of ``SeedSequence(seed).spawn(4)`` (whose children are exactly
``SeedSequence(seed, spawn_key=(i,))``), so a Problem's features, data and
W⁽⁰⁾ are those reffeat has always drawn.

Why distinct (seed, name, key) give distinct streams. numpy's SeedSequence
(numpy/random/bit_generator.pyx, ``get_assembled_entropy`` and ``mix_entropy``)
turns its inputs into one array of uint32 words, the entropy padded with
zeros to the pool size (4 words) whenever a spawn key is given, then the
spawn key, one word per element below 2**32::

    [seed, 0, 0, 0, id, i_1, …, i_r]

1. *Distinct inputs, distinct words.* ``seed`` and every index are checked
   to lie in [0, 2**32) (one word each) and every name has a fixed number r
   of indices (its kind), so (seed, id, indices) ↦ word array is injective:
   two streams of different names differ in word 4, two of one name in the
   seed word or an index word. Nothing here can make two names or two seeds
   coincide, as ``seed + 7 + i`` and sharing ``SeedSequence(seed).spawn(3)``
   between the synthetic and the real-image streams did.
2. *Distinct words, distinct pools.* The first four words are hashed into the
   4-word pool by a bijection (each ``hashmix`` and each ``mix`` step is an
   invertible map of uint32: xor with a constant, multiplication by an odd
   constant, xorshift), and each further word is mixed in by a map of the
   pool that is a bijection for that word. Hence two streams of the same name
   and key but different seeds have different pools — provably. Two streams of
   different names or keys pass through different maps; numpy does not prove
   their pools differ, its hash makes a collision of two 128-bit pools a
   ~2⁻¹²⁸ event, and the test checks it for every stream in use, seeds 0–99:
   no two have the same ``generate_state(4)`` (a bijection of the pool), and
   no two Generators draw the same first four uint64.

The table (kind of key: ``-`` none, ``mode`` "st" | "at", ``split`` "train" |
"test", ``index`` an int in [0, bound), or any int < 2**32 without a bound):

    id  name               key          what
    Synthetic experiment (one Problem per seed; ST and AT share ids 0–3)
     0  features           -            F3 random geometry
     1  train              -            D1–D4 training set
     2  test               -            D1–D4 test set
     3  init               -            N4 initial weights W⁽⁰⁾
     4  attack             mode         T2 random starts during training
     5  eval               mode         E2 random starts of the evaluation attacks
     6  probe              index        extra streams of verify's analyses (tag < 2**32)
     7  features-default   -            F3 random geometry when make_features gets no Generator
    Real images (R1–R4)
     8  real-init          -            R3 initial weights W⁽⁰⁾
     9  real-shuffle       -            R3 batch order
    10  real-attack        -            R3 attack starts during training
    11  real-monitor       -            R3 the monitored training subset
    12  real-eval          index < 4    R4 evaluation attacks (3: the curves over epochs)
    13  real-lens          -            R4 D_R / D_NR construction
    14  real-linear        mode         R4 linear baseline (batch order)
    15  real-e2            index < 5    R4 E2 worst-case evaluation (PGD and APGD starts;
                                        0/1 ST/AT headline, 2/3 ST/AT across ε, 4 the
                                        fresh D_R/D_NR models)
    16  data-split         -            R1 seeded train/test split of an import
    17  data-subset        split        R1 per-class sample caps of a loaded split
    Other
    18  bench              index < 3    inputs of the timing benchmarks (cli/bench)

>>> a = rng(0, "train").standard_normal(); b = rng(0, "train").standard_normal()
>>> a == b
True
>>> seed_sequence(3, "real-e2", 1).spawn_key
(15, 1)
"""

from __future__ import annotations

from numbers import Integral
from typing import NamedTuple

import numpy as np

from .constraints import MODES, Interval, Options, check

SPLITS = ("train", "test")              #: the keys of "data-subset"
WORD = 2**32                            #: seeds and indices are one uint32 word each


class Stream(NamedTuple):
    """One row of the table: ``id`` (fixed forever), ``key`` ("", "mode",
    "split" or "index") and, for "index", the ``bound`` (None: any < 2**32)."""
    id: int
    key: str = ""
    bound: int | None = None


STREAMS: dict[str, Stream] = {
    "features": Stream(0),
    "train": Stream(1),
    "test": Stream(2),
    "init": Stream(3),
    "attack": Stream(4, "mode"),
    "eval": Stream(5, "mode"),
    "probe": Stream(6, "index"),
    "features-default": Stream(7),
    "real-init": Stream(8),
    "real-shuffle": Stream(9),
    "real-attack": Stream(10),
    "real-monitor": Stream(11),
    "real-eval": Stream(12, "index", 4),
    "real-lens": Stream(13),
    "real-linear": Stream(14, "mode"),
    "real-e2": Stream(15, "index", 5),
    "data-split": Stream(16),
    "data-subset": Stream(17, "split"),
    "bench": Stream(18, "index", 3),
}

_PROBLEM = ("features", "train", "test", "init")
_SEED = Interval(Integral, 0, WORD - 1)


def _indices(name: str, stream: Stream, key: tuple) -> tuple:
    """The spawn-key words of ``key`` for stream ``name`` (validated)."""
    what = {"": "no key", "mode": f"one mode ({', '.join(MODES)})",
            "split": f"one split ({', '.join(SPLITS)})", "index": "one integer index"}[stream.key]
    if len(key) != (0 if stream.key == "" else 1):
        raise ValueError(f"key of stream {name!r} must be {what} (got {key!r})")
    if stream.key == "mode":
        return (MODES.index(check(f"mode of stream {name!r}", key[0], Options(MODES))),)
    if stream.key == "split":
        return (SPLITS.index(check(f"split of stream {name!r}", key[0], Options(SPLITS))),)
    if stream.key == "index":
        hi = WORD - 1 if stream.bound is None else stream.bound - 1
        return (check(f"index of stream {name!r}", key[0], Interval(Integral, 0, hi)),)
    return ()


def seed_sequence(seed: int, name: str, *key) -> np.random.SeedSequence:
    """The SeedSequence of stream ``name`` (with its key, e.g. a mode) for ``seed``:
    ``SeedSequence(entropy=seed, spawn_key=(STREAMS[name].id, *indices))``.
    seed: an integer in [0, 2**32 − 1]; key as the table of the module docstring."""
    seed = check("seed", seed, _SEED)
    stream = STREAMS.get(name) if isinstance(name, str) else None
    if stream is None:
        raise ValueError(f"random stream must be one of {', '.join(STREAMS)} (got {name!r})")
    return np.random.SeedSequence(entropy=seed, spawn_key=(stream.id, *_indices(name, stream, key)))


def rng(seed: int, name: str, *key) -> np.random.Generator:
    """A fresh numpy Generator (PCG64) for stream ``name`` of ``seed``."""
    return np.random.default_rng(seed_sequence(seed, name, *key))


def problem_streams(seed: int) -> dict:
    """The four streams of a synthetic Problem: features, train, test, init."""
    return {name: rng(seed, name) for name in _PROBLEM}


def all_keys(name: str, unbounded: int = 32) -> list[tuple]:
    """Every key of stream ``name`` (for an unbounded index, the first ``unbounded``)."""
    stream = STREAMS[name]
    if stream.key == "":
        return [()]
    if stream.key == "mode":
        return [(m,) for m in MODES]
    if stream.key == "split":
        return [(s,) for s in SPLITS]
    return [(i,) for i in range(unbounded if stream.bound is None else stream.bound)]
