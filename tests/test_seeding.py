"""reffeat.seeding: one table of named streams, all distinct, and no Generator made elsewhere."""

import ast
from pathlib import Path

import numpy as np
import pytest

from reffeat import seeding

PKG = Path(seeding.__file__).resolve().parent
SEEDS = range(100)
PROBE_TAGS = 32          # probe tags enumerated: 0..31 (verify uses 23; checked below)

# The table as first published: ids are fixed forever. Adding a stream adds a row
# here; changing or removing a row is a change of every result that uses it.
FROZEN = {
    "features": (0, "", None), "train": (1, "", None), "test": (2, "", None), "init": (3, "", None),
    "attack": (4, "mode", None), "eval": (5, "mode", None), "probe": (6, "index", None),
    "features-default": (7, "", None), "real-init": (8, "", None), "real-shuffle": (9, "", None),
    "real-attack": (10, "", None), "real-monitor": (11, "", None), "real-eval": (12, "index", 4),
    "real-lens": (13, "", None), "real-linear": (14, "mode", None), "real-e2": (15, "index", 5),
    "data-split": (16, "", None), "data-subset": (17, "split", None), "bench": (18, "index", 3),
}


def _all_streams():
    for name in seeding.STREAMS:
        for key in seeding.all_keys(name, unbounded=PROBE_TAGS):
            yield name, key


def test_table_is_frozen_and_ids_unique():
    table = {n: tuple(s) for n, s in seeding.STREAMS.items()}
    for name, row in FROZEN.items():
        assert table.get(name) == row, f"stream {name!r} is {table.get(name)}, was published as {row}"
    ids = [s.id for s in seeding.STREAMS.values()]
    assert len(set(ids)) == len(ids), f"two names share an id: {sorted(ids)}"


def test_derivation_is_the_spawn_key_of_the_table():
    ss = seeding.seed_sequence(41, "real-e2", 3)
    assert ss.entropy == 41 and ss.spawn_key == (15, 3)
    ref = np.random.SeedSequence(entropy=41, spawn_key=(15, 3)).generate_state(4)
    assert np.array_equal(ss.generate_state(4), ref)
    g1, g2 = seeding.rng(41, "eval", "at"), seeding.rng(41, "eval", "at")
    assert np.array_equal(g1.integers(0, 2**63, 8), g2.integers(0, 2**63, 8)), "a stream is not reproducible"


def test_problem_streams_are_the_legacy_spawn_children():
    # ids 0-3 are SeedSequence(seed).spawn(4): a Problem's features, data and W0 did not change
    for seed in (0, 1, 12345):
        kids = np.random.SeedSequence(seed).spawn(4)
        for i, name in enumerate(("features", "train", "test", "init")):
            a = seeding.seed_sequence(seed, name).generate_state(4)
            assert np.array_equal(a, kids[i].generate_state(4)), f"{name} seed {seed} moved"
        g = seeding.problem_streams(seed)
        assert list(g) == ["features", "train", "test", "init"]


def test_no_two_streams_start_in_the_same_state():
    """(a) every named stream with every key in use, seeds 0-99: distinct pools and
    distinct first draws (the distinctness argument of the module docstring)."""
    states, draws = {}, {}
    n = 0
    for seed in SEEDS:
        for name, key in _all_streams():
            ident = (seed, name, key)
            st = tuple(seeding.seed_sequence(seed, name, *key).generate_state(4).tolist())
            assert st not in states, f"{ident} has the SeedSequence state of {states[st]}"
            states[st] = ident
            dr = tuple(seeding.rng(seed, name, *key).integers(0, 2**64, 4, dtype=np.uint64).tolist())
            assert dr not in draws, f"{ident} draws the same first 4 uint64 as {draws[dr]}"
            draws[dr] = ident
            n += 1
    assert n == len(SEEDS) * sum(len(seeding.all_keys(s, PROBE_TAGS)) for s in seeding.STREAMS)
    assert n >= 6000, f"only {n} streams enumerated"


def test_the_old_coincidences_are_gone():
    # issue 22: real-init = features, real-shuffle = train, real-attack = test,
    # real-monitor = data-split, real-eval(s, 1) = real-eval(s + 1, 0), probe(s, 4) = real-lens
    def st(seed, name, *key):
        return tuple(seeding.seed_sequence(seed, name, *key).generate_state(4).tolist())
    for s in (0, 5):
        assert st(s, "real-init") != st(s, "features")
        assert st(s, "real-shuffle") != st(s, "train")
        assert st(s, "real-attack") != st(s, "test")
        assert st(s, "real-monitor") != st(s, "data-split")
        assert st(s, "real-eval", 1) != st(s + 1, "real-eval", 0)
        assert st(s, "probe", 4) != st(s, "real-lens")


@pytest.mark.parametrize("args, words", [
    ((-1, "train"), "seed must be an integer in [0, 4294967295]"),
    ((2**32, "train"), "seed must be an integer in [0, 4294967295]"),
    ((1.0, "train"), "seed must be an integer"),
    ((0, "no-such"), "random stream must be one of features"),
    ((0, "eval"), "key of stream 'eval' must be one mode (st, at)"),
    ((0, "eval", "xx"), "mode of stream 'eval' must be one of st, at"),
    ((0, "train", 0), "key of stream 'train' must be no key"),
    ((0, "real-e2", 5), "index of stream 'real-e2' must be an integer in [0, 4]"),
    ((0, "probe", -1), "index of stream 'probe' must be an integer in [0, 4294967295]"),
    ((0, "data-subset", "val"), "split of stream 'data-subset' must be one of train, test"),
])
def test_bad_input_is_one_valueerror(args, words):
    with pytest.raises(ValueError) as e:
        seeding.rng(*args)
    assert words in str(e.value), str(e.value)


# ---------------------------------------------------------------- callers (AST scan)
def _modules():
    for path in sorted(PKG.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        yield path.relative_to(PKG.parent).as_posix(), ast.parse(path.read_text(encoding="utf-8"))


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


_MAKERS = {"default_rng", "RandomState", "SeedSequence", "Generator", "PCG64", "PCG64DXSM",
           "MT19937", "Philox", "SFC64"}


def generator_makers() -> list[str]:
    """Every place outside seeding.py that makes a Generator or touches numpy's global
    random state: a call of default_rng/RandomState/SeedSequence/a BitGenerator, any
    ``np.random.<x>`` other than the annotation ``np.random.Generator``, and imports
    from numpy.random. Docstrings and comments do not count."""
    found = []
    for rel, tree in _modules():
        if rel == "reffeat/seeding.py":
            continue
        callees = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Call):
                name = _dotted(node.func)
                if name.split(".")[-1] in _MAKERS:
                    found.append(f"{where} {name}(")
            elif isinstance(node, ast.Attribute):
                name = _dotted(node)
                if (name.startswith(("np.random.", "numpy.random.")) and name.count(".") == 2
                        and node.attr != "Generator" and id(node) not in callees):
                    found.append(f"{where} {name}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("numpy.random"):
                found.append(f"{where} from {node.module} import …")
    return sorted(set(found))


def _mentions_seed(node) -> bool:
    if isinstance(node, ast.Name):
        return "seed" in node.id.lower()
    if isinstance(node, ast.Attribute):
        return "seed" in node.attr.lower()
    if isinstance(node, ast.Subscript):
        s = node.slice
        return isinstance(s, ast.Constant) and isinstance(s.value, str) and "seed" in s.value.lower()
    return False


def seed_arithmetic() -> list[str]:
    """Every ``<seed> ± <int constant>`` outside seeding.py (a derived seed: a second
    stream made by offset, which overlaps the streams of the neighbouring seeds)."""
    found = []
    for rel, tree in _modules():
        if rel == "reffeat/seeding.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
                a, b = node.left, node.right
                for x, y in ((a, b), (b, a)):
                    if _mentions_seed(x) and isinstance(y, ast.Constant) and isinstance(y.value, int):
                        found.append(f"{rel}:{node.lineno} {ast.unparse(node)}")
    return sorted(set(found))


def test_no_generator_made_outside_seeding():
    found = generator_makers()
    assert not found, ("Generators made outside reffeat.seeding (use seeding.rng(seed, name, *key)): "
                       + "; ".join(found))


def test_no_seed_arithmetic():
    found = seed_arithmetic()
    assert not found, ("seeds derived by arithmetic (name a stream in reffeat.seeding instead): "
                       + "; ".join(found))


def test_callers_name_streams_of_the_table():
    """Every literal ``seeding.rng/seed_sequence(seed, "name", key)`` in reffeat names a
    stream of the table with a key the distinctness test enumerates."""
    used = []
    for rel, tree in _modules():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and _dotted(node.func).split(".")[-1] in ("rng", "seed_sequence")
                    and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
                    and isinstance(node.args[1].value, str)):
                name = node.args[1].value
                key = tuple(a.value for a in node.args[2:] if isinstance(a, ast.Constant))
                used.append((rel, node.lineno, name, key))
    assert len(used) >= 10, f"the scan found only {len(used)} calls: {used}"
    for rel, line, name, key in used:
        assert name in seeding.STREAMS, f"{rel}:{line} uses unknown stream {name!r}"
        if key:
            assert key in seeding.all_keys(name, PROBE_TAGS), \
                f"{rel}:{line} uses {name}{key}, outside the keys the distinctness test enumerates"
