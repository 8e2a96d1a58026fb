"""N1–N2: σ values, continuity, C¹ for q > 1, σ' against central differences."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reffeat import smoothed_relu, smoothed_relu_grad
from reffeat.activation import smoothed_relu_and_grad

Q = [1.0, 2.0, 3.0, 4.0, 2.5]


@pytest.mark.parametrize("q", Q)
@pytest.mark.parametrize("rho", [0.3, 1.0, 2.7])
def test_continuous_and_c1_at_kinks(q, rho):
    h = 1e-9
    for z0 in (0.0, rho):
        lo, hi = smoothed_relu(np.array([z0 - h, z0 + h]), q=q, rho=rho)
        assert abs(hi - lo) < 1e-8, f"σ jumps by {hi - lo:.2e} at z={z0} (q={q})"
        glo, ghi = smoothed_relu_grad(np.array([z0 - h, z0 + h]), q=q, rho=rho)
        if q > 1:
            assert abs(ghi - glo) < 1e-6, f"σ' jumps by {ghi - glo:.2e} at z={z0} (q={q})"
    # exact values at the kinks: σ(0)=0, σ(ρ)=ρ/q, σ'(ρ)=1, σ'(0)=0
    s = smoothed_relu(np.array([0.0, rho]), q=q, rho=rho)
    g = smoothed_relu_grad(np.array([0.0, rho]), q=q, rho=rho)
    assert s[0] == 0 and np.isclose(s[1], rho / q) and g[0] == 0 and np.isclose(g[1], 1.0)


@given(z=st.floats(-5, 5), q=st.sampled_from(Q), rho=st.floats(0.1, 3.0))
def test_grad_matches_central_difference(z, q, rho):
    h = 1e-6
    if min(abs(z), abs(z - rho)) < 1e-4:          # kinks: σ' is one-sided there
        return
    fd = (smoothed_relu(z + h, q=q, rho=rho) - smoothed_relu(z - h, q=q, rho=rho)) / (2 * h)
    an = smoothed_relu_grad(z, q=q, rho=rho)
    assert abs(fd - an) <= 1e-6 * max(1.0, abs(an)), f"σ' {an} vs FD {fd} at z={z}, q={q}, ρ={rho}"


@pytest.mark.parametrize("q", Q)
def test_fused_equals_separate(q):
    z = np.concatenate([np.linspace(-3, 4, 20001), [0.0, 0.7, -0.0]])
    s, g = smoothed_relu_and_grad(z, q, 0.7)
    assert np.allclose(s, smoothed_relu(z, q=q, rho=0.7), rtol=1e-13, atol=1e-15)
    assert np.allclose(g, smoothed_relu_grad(z, q=q, rho=0.7), rtol=1e-13, atol=1e-15)


def test_pieces():
    z = np.array([-1.0, 0.5, 2.0])
    assert np.allclose(smoothed_relu(z, q=3, rho=1.0), [0, 0.125 / 3, 2 - 2 / 3])
    assert np.allclose(smoothed_relu(z, q=1, rho=1.0), [0, 0.5, 2.0])          # q=1: ReLU
