"""Issue 24, an API without traps: the ascent step is ``ascent_step`` /
``eval_ascent_step`` (the old ``gamma`` / ``eval_gamma`` still work for one
version, with a DeprecationWarning or a one-line note), and the model's
constants are keywords in the public functions."""
import json
import warnings

import numpy as np
import pytest

from reffeat import Config
from reffeat.cli import run as run_cli
from reffeat.config import RENAMED, parse_set, read_toml, upgrade_keys

TINY = ["--set", "T=2", "--set", "n_train=8", "--set", "n_test=8", "--set", "P=4", "--set", "d_N=8",
        "--set", "m=2", "--set", "eval_K=2", "--set", "eval_apgd_K=0", "--set", "log_every=1", "--quiet",
        "--no-figures", "--mode", "at"]


def test_new_names_and_old_keywords_warn():
    new = Config(ascent_step=0.1, eval_ascent_step=0.03)
    d = new.to_dict()
    assert "ascent_step" in d and "eval_ascent_step" in d and "gamma" not in d and "eval_gamma" not in d
    with pytest.warns(DeprecationWarning, match="'gamma' is deprecated.*'ascent_step'"):
        old = Config(gamma=0.1, eval_ascent_step=0.03)
    assert old == new and new.step_size == 0.1 and new.eval_step_size == 0.03
    with pytest.warns(DeprecationWarning, match="eval_gamma"):
        assert Config.from_dict({"gamma": 0.1, "eval_gamma": 0.03}) == new
    with pytest.warns(DeprecationWarning):
        assert Config().replace(gamma=0.1, eval_ascent_step=0.03) == new
    with pytest.warns(DeprecationWarning):
        assert new.gamma == 0.1 and new.eval_gamma == 0.03
    with pytest.raises(ValueError, match="'gamma' is the old name of 'ascent_step'"):
        Config(gamma=0.1, ascent_step=0.1)
    with pytest.raises(ValueError, match="ascent_step"):
        Config(ascent_step=-1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # the new names never warn
        Config.from_dict(new.to_dict())
        assert upgrade_keys({"gamma": 1}, warn=False) == {"ascent_step": 1}
    assert set(RENAMED.values()) <= set(Config().to_dict())


def test_old_set_key_and_toml_key(tmp_path):
    with pytest.warns(DeprecationWarning):
        assert parse_set("gamma=0.5") == ("ascent_step", 0.5)
    f = tmp_path / "c.toml"
    f.write_text("eval_gamma = 0.01\n")
    with pytest.warns(DeprecationWarning):
        assert read_toml(f) == {"eval_ascent_step": 0.01}


def test_cli_old_key_is_a_note_and_the_same_numbers(tmp_path, capsys):
    assert run_cli.main(TINY + ["--set", "ascent_step=0.05", "--out", str(tmp_path / "new")]) == 0
    assert "note:" not in capsys.readouterr().err
    assert run_cli.main(TINY + ["--set", "gamma=0.05", "--out", str(tmp_path / "old")]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "'gamma'" in notes[0] and "'ascent_step'" in notes[0]
    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("new", "old"))
    assert a["config"] == b["config"] and a["config"]["ascent_step"] == 0.05
    assert a["at"]["robust_acc"] == b["at"]["robust_acc"] and a["at"]["history"] == b["at"]["history"]
    wa, wb = (np.load(tmp_path / d / "weights_at.npz")["W"] for d in ("new", "old"))
    assert np.array_equal(wa, wb)


def test_old_summary_config_still_loads():
    """A summary.json written before the rename (figures/run_default may be one) is read
    by Config.from_dict (verify --from-results) and by verify.committed."""
    from reffeat.verify import committed
    summary = json.loads(committed.SYNTHETIC_FILE.read_text())
    old = dict(summary, config={(k if k not in ("ascent_step", "eval_ascent_step") else
                                 {"ascent_step": "gamma", "eval_ascent_step": "eval_gamma"}[k]): v
                                for k, v in Config.from_dict(upgrade_keys(summary["config"], warn=False))
                                .to_dict().items()})
    assert "gamma" in old["config"]
    with pytest.warns(DeprecationWarning):
        cfg = Config.from_dict(old["config"])
    assert cfg == Config.from_dict(upgrade_keys(summary["config"], warn=False))
    nums = committed.synthetic_numbers(old)
    assert "config.ascent_step" in nums and "config.gamma" not in nums


PUBLIC_WITH_CONSTANTS = ("smoothed_relu", "smoothed_relu_grad", "forward", "loss", "per_sample_loss", "grad_w",
                         "grad_x", "predict", "c4_decomposition", "grad_w_and_c4", "accuracy", "attack",
                         "feature_attack_correct", "certify", "certify_bounds")


def test_model_constants_are_keyword_only_everywhere():
    import inspect

    import reffeat as rf
    for name in PUBLIC_WITH_CONSTANTS:
        params = inspect.signature(getattr(rf, name)).parameters
        for const in ("q", "rho"):
            assert params[const].kind is inspect.Parameter.KEYWORD_ONLY, f"{name}: {const} is not keyword-only"


def test_positional_constants_still_work_with_a_warning():
    import reffeat as rf
    rng = np.random.default_rng(0)
    W = rng.standard_normal((3, 2, 5))
    X = rng.standard_normal((4, 6, 5))
    y = np.array([0, 1, 2, 0])
    L, G = rf.grad_w(W, X, y, q=3.0, rho=1.0)
    with pytest.warns(DeprecationWarning, match=r"grad_w\(\): pass q, rho by keyword"):
        L2, G2 = rf.grad_w(W, X, y, 3.0, 1.0)
    assert L == L2 and np.array_equal(G, G2)
    with pytest.warns(DeprecationWarning):
        assert np.array_equal(rf.predict(W, X, 3.0, rho=1.0), rf.predict(W, X, q=3.0, rho=1.0))
    with pytest.raises(TypeError, match="both by position and by keyword"):
        rf.forward(W, X, 3.0, q=3.0, rho=1.0)
    with pytest.raises(TypeError, match="positional"):
        rf.forward(W, X, 3.0, 1.0, 5)
