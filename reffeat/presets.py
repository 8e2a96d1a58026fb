"""§11 presets: named Configs (``--preset NAME``; a user's ``--set`` overrides them).

A preset is a dict of Config fields that differ from the Config defaults,
so ``default`` is empty. ``borderline`` spells out every field of the
first version's defaults so that it keeps reproducing that version's numbers
whatever the defaults become. Each pitfall preset is the default regime with
only the pitfall's own change (SPEC §9).

>>> config("borderline").eta, config("borderline").q
(0.5, 3.0)
>>> config("default", eta=0.02).eta
0.02
"""

from __future__ import annotations

import math

from . import regime as _regime
from .config import Config

#: the first version's defaults (SPEC §2/§7 before §11), every field the
#: new defaults changed or might change
_FIRST_VERSION = {
    "k": 4, "P": 64, "s": 1, "d_N": 32, "geometry": "sparse-dense",
    "alpha": 3.0, "beta": 1.0, "sigma_xi": 0.0, "n_nonrobust": None,
    "n_train": 200, "n_test": 500, "m": 16, "sigma0": 0.01, "q": 3.0, "rho": 1.0,
    "eta": 0.5, "T": 150, "norm": "linf", "eps": 0.2, "K": 1, "ascent_step": None,
    "random_start": False, "ascent": "sign", "lam": 1.0,
    "eval_K": 20, "eval_ascent_step": None, "eval_restarts": 2, "log_every": 10,
}

#: ℓ2 radii with the ℓ∞ ball's pull on ⟨x_p, v_y⟩ (ε‖v‖₁ = 0.2·sqrt(32)):
#: per patch, and on all 63 non-robust patches at once for the whole input
_EPS_L2_PATCH = 0.2 * math.sqrt(32)
_EPS_L2_WHOLE = _EPS_L2_PATCH * math.sqrt(63)

#: plain ascent's large step (``plain-ascent-large-step``). G3 at W⁽⁰⁾ has entries of
#: order (1 − 1/k)·√m·σ_0²·(feature amplitude ≈ 1) ≈ 0.75·4·1e-4 ≈ 3e-4 at the
#: defaults (measured: median 1.8e-4), so D(g) = g with γ = ε moves the input by
#: ~ε·1e-4. γ = 1e4·ε makes γ|g| ≳ ε from the first step on, and the projection
#: onto the ball, not γ, sets the size of the perturbation (≈ FGSM where |γ g| > ε).
_PLAIN_LARGE_ASCENT_STEP = 1e4 * 0.2

#: name -> (one-line description, Config fields that differ from the defaults)
PRESETS: dict[str, tuple[str, dict]] = {
    "default": (
        "the defaults: RC1–RC5 met with margin (q = 2, η = 0.05, T = 300, σ_ξ = 0.1)",
        {}),
    "q3": (
        "q = 3, the tensor-power race: α = 2 (RC1), σ_0 = 0.03, T = 2100 at η = 0.08 "
        "(RC4: the slowest class takes off by step ≈ 670), n_train = 100",
        {"q": 3.0, "alpha": 2.0, "sigma0": 0.03, "eta": 0.08, "T": 2100, "n_train": 100,
         "log_every": 50}),
    "borderline": (
        "the first version's defaults (α = 3, β = 1, σ_ξ = 0, η = 0.5, T = 150, q = 3): "
        "RC1, RC3 and RC4 not met — the race and the AT step instability",
        dict(_FIRST_VERSION)),
    "high-dim": (
        "d − 2k ≥ n·P (k = 4, P = 8, d_N = 256, n_train = 31): the training noise "
        "vectors are linearly independent, so SPEC C5's decomposition is unique",
        {"P": 8, "d_N": 256, "n_train": 31, "n_test": 200, "alpha": 1.25, "eps": 0.1,
         "sigma_xi": 0.05, "eta": 0.25, "T": 500}),
    "plain-ascent": (
        "pitfall: un-normalised gradient ascent (D(g) = g) in T2 at the default step γ = ε: "
        "the gradient's entries are ~1e-4, so the step moves the input by ~ε·1e-4 — AT trains "
        "on the clean points and equals ST; the failure is the step size (see "
        "plain-ascent-large-step)",
        {"ascent": "plain"}),
    "plain-ascent-large-step": (
        f"plain ascent (D(g) = g) with γ = {_PLAIN_LARGE_ASCENT_STEP:g} (γ|g| ≳ ε from the first "
        "step): the projection onto the ball sets the perturbation's size and AT is robust",
        {"ascent": "plain", "ascent_step": _PLAIN_LARGE_ASCENT_STEP}),
    "pgd-large-step": (
        "pitfall: PGD-10 adversarial training with a large step γ = ε, random start, "
        "at the first version's η = 0.5",
        {"K": 10, "ascent_step": 0.2, "random_start": True, "eta": 0.5}),
    "l2": (
        f"pitfall: whole-input ℓ2 threat, ε = {_EPS_L2_WHOLE:.2f} (the ℓ∞ ball's pull on "
        "⟨x_p, v_y⟩ on every non-robust patch)",
        {"norm": "l2", "eps": _EPS_L2_WHOLE}),
    "l2-patch": (
        f"pitfall: per-patch ℓ2 threat, ε = {_EPS_L2_PATCH:.2f} per patch (the ℓ∞ ball's "
        "pull on ⟨x_p, v_y⟩)",
        {"norm": "l2-patch", "eps": _EPS_L2_PATCH}),
}


# ---------------------------------------------------------------- §12 the family
#: the sizes d_N of the family (doubling); ``theorem_family`` accepts any d_N ≥ 16
THEOREM_SIZES = (32, 64, 128, 256, 512)
#: ε‖v‖₁ = C_EPS·β for every member (RC2 with a 25% margin, uniformly in d_N)
C_EPS = 1.25
#: σ_0·sqrt(d_N) for every member: the level of the residual non-robust coefficient
#: AT keeps (see ``theorem_family``), and ε‖w⁽⁰⁾‖₁ ≈ C_EPS·sqrt(2/π)·this
SIGMA0_ROOT = 0.02 * math.sqrt(32)
#: σ_ξ·sqrt(d_N − k): the norm of a patch's noise, constant along the family (as at the default)
NOISE_NORM = 0.1 * math.sqrt(28)
#: η as a fraction of RC3's bound η_max
ETA_FRACTION = 0.75
#: T as a multiple of the slowest predicted take-off (RC4's threshold is 3)
T_FACTOR = 3.5
#: the fixed part of the family: q = 3, the race RC1 at R = 63/8 = 7.9 for every size
_FAMILY_FIXED: dict = {"q": 3.0, "k": 4, "P": 64, "s": 1, "alpha": 2.0, "beta": 1.0, "m": 16, "rho": 1.0,
                 "n_train": 50, "n_test": 200}


#: version 2 of σ_0·sqrt(d_N), revised after v1's measured failure (d_N = 32, 64, seeds 0–2:
#: AT robust 0.00 on all 6, residual Φ(AT) 0.26–0.57 ≈ κ·SIGMA0_ROOT with κ ≈ 2.3–5, not κ = 1):
#: (P−s)σ(C_EPS·κ·φ) ≤ 0.1·sσ(Γ a_R) with κ = 3.5 and the measured Γ(AT) ≈ 1.5 (margin σ(2.7) = 2.03)
#: gives C_EPS·κ·φ ≤ (3·0.203/63)^{1/3} = 0.213, φ = 0.213/(1.25·3.5) = 0.0487
SIGMA0_ROOT_V2 = 0.0487


def theorem_family(d_N: int, sigma0_root: float = SIGMA0_ROOT) -> Config:
    """§12 the family at q = 3 indexed by d_N: every other field a stated function
    of d_N, derived from RC1–RC6 (``reffeat.regime``; measured numbers in verify.region).

    * q = 3, k = 4, P = 64, s = 1, β = 1, α = 2, m = 16, ρ = 1: fixed. RC1's margin
      R = (P−s)β³/(sα³) = 63/8 = 7.9 does not depend on d_N (the features are
      orthonormal, the initial maxima σ_0·max of m normals scale out of the ratio),
      against its threshold 5.53 (spread of the initial maxima over classes and P1's
      factor 5): met uniformly.
    * ε = C_EPS·β/sqrt(d_N), C_EPS = 1.25: ε‖v‖₁ = 1.25β > β (RC2 uniformly, 25%
      margin) while ε‖u‖₁ = ε → 0, so the robust amplitude left by the attack
      a_R = α − ε → α and AT's drag (P−s)(ε‖u‖₁)^q (RC4's A_AT) → 0.
    * σ_ξ = NOISE_NORM/sqrt(d_N − k): each patch's noise has norm 0.53 as at the default.
    * σ_0 = SIGMA0_ROOT/sqrt(d_N) (0.02 at d_N = 32). RC6 at the learned weights: class
      t's neuron w = Γ_t u_t + Φ_t v_t + r is read by the ℓ∞ adversary on each of
      the P − s non-robust patches of a class-y point at once, a_t = εΓ_t + ε‖v‖₁Φ_t
      + ε‖r‖₁ per patch, so the wrong class gains ≈ (P−s)σ(a_t) against the robust
      margin sσ(Γ_y a_R). (i) εΓ_t → 0 as 1/sqrt(d_N) (Γ is set by the margin, not by
      d_N). (ii) Φ_t: early in AT the one-step attack's sign pattern follows the random
      W⁽⁰⁾ (per coordinate ≈ σ_0) until the v part of the gradient (per coordinate
      Φ/sqrt(d_N)) is as large, i.e. AT learns Φ as ST does up to Φ_res ≈ σ_0·sqrt(d_N)
      (q3 preset: σ_0·sqrt(32) = 0.17, measured Φ(AT) ≈ 0.2–0.25) and the attack
      cancels v from then on; its reach is ε‖v‖₁Φ_res = C_EPS·β·SIGMA0_ROOT = 0.14,
      constant. (iii) r ⊇ W⁽⁰⁾: ε‖w⁽⁰⁾‖₁ ≈ C_EPS·sqrt(2/π)·SIGMA0_ROOT·(d/d_N) ≈ 0.11,
      constant (RC5's reach (P−s)σ(·) ≤ 0.09). So (P−s)σ(a) decreases toward
      63·σ(0.25) ≈ 0.3 while the margin stays ≈ 6: ``rc6_estimate`` (value < 1 from
      d_N = 128 on with the conservative Γ̂: 3.9, 1.7, 0.86, 0.48, 0.30 at d_N = 32…512).
      Scaling σ_0 faster (∝ 1/d_N) would make (ii) and (iii) vanish but multiplies T
      (below) by sqrt(d_N) more.
    * **Measured (verify.region; v1 = SIGMA0_ROOT, v2 = SIGMA0_ROOT_V2): the family does
      not reach the regime.** AT robust accuracy (E2) 0.00 on every seed: v1 d_N = 32, 64,
      128 × seeds 0–2 (9/9), v2 d_N = 32 (see the report); E5 certified 0.00. (ii) is
      wrong: Φ(AT) = 0.26–0.57 at v1 and 0.35 at v2 (σ_0 2.3× smaller) — the residual
      does not follow σ_0·sqrt(d_N). The term the analysis missed is the off-feature part
      AT learns, r − r⁽⁰⁾: dense (‖·‖₁/(sqrt(d)‖·‖₂) ≈ 0.85–0.9), ε‖r‖₁ = 0.44–1.6 per
      patch at d_N = 32 (W⁽⁰⁾'s part: 0.15; ST's r stays at W⁽⁰⁾'s). Under ε = C_EPS/sqrt(d_N)
      every dense direction is scale-invariant (ε‖r‖₁ ≈ C_EPS‖r‖₂), so this reach does not
      shrink with d_N; RC6 ("r") per seed: d_N = 32: 76–1.4e4, 64: 24–5e5, 128: 10–1e7.
      Only the εΓ term of (i) falls with the size. With η = 0.75·η_max, 2 of 3 seeds at
      d_N = 32 had a late loss spike (max 40, 53): RC3's bound is not safe late in AT.
    * η = ETA_FRACTION·η_max (RC3, η_max = 2ρ/(c(P−s)ε²d) ≈ const since ε²d ≈ C_EPS²β²),
      rounded to 3 significant digits.
    * T = T_FACTOR × the slowest predicted take-off (RC4: q = 3, t = ρ²I(x0, x*)/(ηcA)
      ≈ 1/(ηcA x0), x0 the slowest class's initial maximum ∝ σ_0, so T ∝ sqrt(d_N)),
      rounded up to a multiple of 100; RC4's value is then ≥ 3.5 > 3.
    * n_train = 50, n_test = 200 (cost; no condition depends on n), log_every = T/10.

    ``sigma0_root``: σ_0·sqrt(d_N), SIGMA0_ROOT (version 1, the registered family) or
    SIGMA0_ROOT_V2 (version 2, after v1's measured residual Φ). ValueError for a d_N
    that is not an integer ≥ 16 (d_N = 8 has no finite RC4 take-off).
    """
    if not isinstance(d_N, int) or isinstance(d_N, bool) or d_N < 16:
        raise ValueError(f"d_N must be an integer >= 16 (got {d_N!r})")
    base: dict = dict(_FAMILY_FIXED, d_N=d_N, eps=C_EPS * _FAMILY_FIXED["beta"] / math.sqrt(d_N),
                sigma_xi=NOISE_NORM / math.sqrt(d_N - _FAMILY_FIXED["k"]),
                sigma0=sigma0_root / math.sqrt(d_N))
    cfg = Config(**base)
    eta = float(f"{ETA_FRACTION * _regime.eta_max(cfg):.3g}")
    cfg = cfg.replace(eta=eta)
    t = _regime.takeoff_times(cfg)
    slowest = max(t["st_phi"], t["at_gamma"])
    if not math.isfinite(slowest):               # e.g. d_N = 8: a coefficient never takes off (RC4)
        raise ValueError(f"d_N must be an integer >= 16 for theorem_family: at d_N = {d_N} RC4's "
                         f"take-off time is infinite, so no T exists (got d_N = {d_N})")
    T = int(math.ceil(T_FACTOR * slowest / 100.0) * 100)
    return cfg.replace(T=T, log_every=max(1, T // 10))


def rc6_estimate(cfg: Config) -> dict:
    """RC6 predicted from the Config (no training), the estimate of ``theorem_family``:
    Γ̂ with sσ(Γ̂ a_R) = ln((k−1)·n_train) (the margin at which a training point's
    loss is ≈ 1/n and the logit gradient has decayed: conservative, measured Γ(AT) is
    smaller), Φ_res = σ_0·sqrt(d_N), a = εΓ̂‖u‖₁ + ε‖v‖₁Φ_res + ε·σ_0·d·sqrt(2/π);
    value = (P−s)σ(a)/(sσ(Γ̂ a_R)) (met when < 1, as RC6)."""
    u1, v1 = _regime.feature_l1(cfg)
    aR = cfg.alpha - cfg.eps * u1
    G = _regime._sigma_inv(math.log((cfg.k - 1) * cfg.n_train) / cfg.s, cfg.q, cfg.rho) / aR
    a = cfg.eps * (G * u1 + v1 * cfg.sigma0 * math.sqrt(cfg.d_N) + cfg.sigma0 * cfg.d * math.sqrt(2 / math.pi))
    value = (cfg.P - cfg.s) * _regime._sigma(a, cfg.q, cfg.rho) / (cfg.s * _regime._sigma(G * aR, cfg.q, cfg.rho))
    return {"gamma_hat": G, "reach_per_patch": a, "value": value}


#: the member registered as ``--preset theorem``: the largest of THEOREM_SIZES that runs
#: ``python -m reffeat.run --preset theorem`` in ≤ 60 s on the 2-core machine. Measured on
#: the idle machine (2026-12-04, load < 1.3, fresh venv, kernels compiled): d_N = 32 took
#: 13.8 s wall, 64 took 22.9 s, 128 took 61.2 s — so 64. (An earlier measurement under
#: load average 5–6 gave 49.9 s at d_N = 32 and registered 32; a loaded machine can push
#: d_N = 64 past 60 s.)
THEOREM_D_N = 64
PRESETS["theorem"] = (
    f"§12 the q = 3 family's largest member that runs in ≤ 60 s: theorem_family(d_N={THEOREM_D_N}) "
    "(ε = 1.25/sqrt(d_N), σ_0 = 0.113/sqrt(d_N), η, T from RC3/RC4)",
    {k: v for k, v in theorem_family(THEOREM_D_N).to_dict().items() if v != getattr(Config(), k)})

NAMES = tuple(PRESETS)


def fields(name: str) -> dict:
    """The Config fields of preset ``name`` (a copy); ValueError for an unknown name."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(NAMES)} (got {name!r})")
    return dict(PRESETS[name][1])


def config(name: str = "default", **overrides) -> Config:
    """The Config of preset ``name`` with ``overrides`` applied on top (validated)."""
    return Config(**{**fields(name), **overrides})


def describe() -> str:
    """One line per preset: name and description (for --help and the README)."""
    width = max(map(len, NAMES))
    return "\n".join(f"  {n:{width}s}  {PRESETS[n][0]}" for n in NAMES)
