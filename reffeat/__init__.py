"""reffeat — reference implementation of adversarial training as feature
learning (Li & Li, arXiv 2410.08503, ICLR 2025) in numpy.

Public API (equation labels of SPEC.md in brackets):

    Config                                   all parameters, validated
    make_features(cfg) -> (U, V)             [F1–F3]
    sample(cfg, n, rng) -> (X, y)            [D1–D4]
    smoothed_relu, smoothed_relu_grad        [N1, N2]
    init_weights, forward, loss, grad_w, grad_x, predict   [N3, N4, L1–L3, G1–G3]
    set_backend, get_backend, use_backend    numba kernels or numpy reference (reffeat.backend)
    attack, feature_attack_correct           [T2, E2b]
    problem, train                           [T1, T3]
    coefficients, coefficient_summary, c4_decomposition    [C1–C4]
    grad_w_and_c4                            [G2 + C4 from one backward pass]
    accuracy, robust_correct, alignment, feature_responses, evaluate   [E1–E5]
    certify, certify_bounds                  [E5]
    regime_conditions (= regime.regime)      [RC1–RC6]
    check_claims (= claims.claims)           [P1–P4, V1/V2; not named claims: the module reffeat.claims]
"""

from ._version import __version__
from .activation import smoothed_relu, smoothed_relu_grad
from .attacks import attack, feature_attack_correct, feature_perturbations, project
from .backend import get_backend, set_backend, use_backend
from .certify import certify, certify_bounds
from .claims import claims as check_claims
from .config import Config
from .distribution import NOISE, NONROBUST, ROBUST, pure_inputs, sample
from .features import make_features
from .metrics import (
    accuracy,
    alignment,
    c4_decomposition,
    coefficient_summary,
    coefficients,
    evaluate,
    feature_responses,
    grad_w_and_c4,
    robust_correct,
)
from .model import forward, grad_w, grad_x, init_weights, loss, per_sample_loss, predict
from .regime import regime as regime_conditions
from .train import Problem, TrainResult, problem, train

__all__ = [
    "__version__",
    "Config", "make_features", "sample", "pure_inputs", "ROBUST", "NONROBUST", "NOISE",
    "smoothed_relu", "smoothed_relu_grad",
    "init_weights", "forward", "loss", "per_sample_loss", "grad_w", "grad_x", "predict",
    "set_backend", "get_backend", "use_backend",
    "attack", "project", "feature_attack_correct", "feature_perturbations",
    "problem", "train", "Problem", "TrainResult",
    "coefficients", "coefficient_summary", "c4_decomposition", "grad_w_and_c4",
    "accuracy", "robust_correct", "alignment", "feature_responses", "evaluate",
    "certify", "certify_bounds", "regime_conditions", "check_claims",
]
