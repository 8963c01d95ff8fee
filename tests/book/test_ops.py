"""ops: every derivative against finite differences, the softmax Jacobian against the
p - onehot(y) shortcut, and numerical stability of softmax for huge logits."""
import warnings

import numpy as np
import pytest

from scratchrnn.book import ops
from scratchrnn.book.gradcheck import numerical_gradient, rel_error

TOL = 1e-8     # float64 finite differences on tiny elementwise functions


def _arrays(backend, seed, *shapes, scale=1.0):
    rng = np.random.default_rng(seed)
    return [backend.asarray(scale * rng.standard_normal(s)) for s in shapes]


def _onehot(targets, V):
    out = np.zeros((len(targets), V))
    out[np.arange(len(targets)), targets] = 1.0
    return out


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu"])
def test_activation_derivatives_match_finite_differences(backend, name):
    forward, backward = getattr(ops, name), getattr(ops, name + "_backward")
    x, w = _arrays(backend, 0, (5, 7), (5, 7), scale=2.0)
    if name == "relu":      # keep every entry well away from the kink at 0
        x = backend.xp.where(abs(x) < 0.1, x + 0.3, x)
    loss = lambda: (forward(x) * w).sum()        # noqa: E731   dloss/dout = w
    analytic = backward(w, forward(x))           # derivatives are taken from the output
    assert rel_error(analytic, numerical_gradient(loss, x)) < TOL


def test_relu_backward_is_zero_where_inactive(backend):
    x = backend.asarray(np.array([-2.0, -0.5, 0.0, 0.5, 2.0]))
    dr = backend.asarray(np.ones(5))
    np.testing.assert_array_equal(backend.asnumpy(ops.relu_backward(dr, ops.relu(x))),
                                  [0, 0, 0, 1, 1])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_backward_matches_finite_differences(backend, name):
    z, w = _arrays(backend, 1, (4, 6), (4, 6), scale=3.0)
    forward = getattr(ops, name)
    loss = lambda: (forward(z) * w).sum()        # noqa: E731
    p = ops.softmax(z)
    analytic = (ops.softmax_backward if name == "softmax" else ops.log_softmax_backward)(w, p)
    assert rel_error(analytic, numerical_gradient(loss, z)) < TOL


def test_softmax_jacobian_matches_finite_differences(backend):
    (z,) = _arrays(backend, 2, (5,))
    J = backend.asnumpy(ops.softmax_jacobian(ops.softmax(z)))
    for i in range(5):      # row i of J is the gradient of p_i
        num = numerical_gradient(lambda i=i: ops.softmax(z)[i], z)
        assert rel_error(J[i], num) < TOL


def test_jacobian_chain_equals_cross_entropy_shortcut(backend):
    """Through the full Jacobian: L = -mean_n log p_n[y_n], so dL/dp_n = -onehot(y_n) / (N p_n)
    and dL/dz_n = J_n^T dL/dp_n. That must equal the one-line shortcut (p - onehot(y)) / N."""
    N, V = 6, 5
    (z,) = _arrays(backend, 3, (N, V), scale=2.0)
    y = np.random.default_rng(3).integers(V, size=N)
    p = backend.asnumpy(ops.softmax(z))
    via_jacobian = np.stack([
        backend.asnumpy(ops.softmax_jacobian(backend.asarray(p[n]))).T
        @ (-_onehot([y[n]], V)[0] / (N * p[n]))
        for n in range(N)])
    shortcut = ops.cross_entropy_backward(backend.asarray(p), backend.asarray(y))
    assert rel_error(via_jacobian, shortcut) < 1e-12
    # and both are the derivative of the loss itself
    loss = lambda: ops.cross_entropy(z, backend.asarray(y))[0]   # noqa: E731
    assert rel_error(shortcut, numerical_gradient(loss, z)) < TOL


def test_softmax_rows_sum_to_one(backend):
    (z,) = _arrays(backend, 4, (8, 11), scale=5.0)
    p = backend.asnumpy(ops.softmax(z))
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    assert (p >= 0).all()
    np.testing.assert_allclose(np.exp(backend.asnumpy(ops.log_softmax(z))), p, atol=1e-15)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_huge_logits_are_finite_and_silent(backend, dtype):
    """Logits of +-1e4 must not overflow: finite values, no warnings. Underflow is allowed
    (and ignored, as NumPy does by default): exp(-2e4) rounding to 0 is the correct
    answer for a probability that small, not an error."""
    z = backend.asarray(np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]]),
                        dtype=dtype)
    y = backend.asarray(np.array([1, 2, 0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
            p = ops.softmax(z)
            logp = ops.log_softmax(z)
            loss, p2 = ops.cross_entropy(z, y)
            dz = ops.cross_entropy_backward(p2, y)
            s = ops.sigmoid(z)
    for a in (p, logp, loss, dz, s):
        a = backend.asnumpy(a)
        assert a.dtype == np.dtype(dtype)
        assert np.isfinite(a).all()
    p = backend.asnumpy(p)
    np.testing.assert_allclose(p, [[1, 0, 0], [1 / 3] * 3, [0.5, 0.5, 0]], atol=1e-6)
    np.testing.assert_allclose(backend.asnumpy(logp)[0], [0, -2e4, -1e4], rtol=1e-6)
    np.testing.assert_allclose(backend.asnumpy(s)[0], [1, 0, 0.5])


def test_cross_entropy_with_mask(backend):
    N, V = 7, 4
    (z,) = _arrays(backend, 5, (N, V))
    rng = np.random.default_rng(5)
    y_host = rng.integers(V, size=N)
    mask_host = np.array([1, 0, 1, 1, 0, 1, 0])
    y, mask = backend.asarray(y_host), backend.asarray(mask_host)
    loss, p = ops.cross_entropy(z, y, mask)
    logp = np.log(backend.asnumpy(ops.softmax(z)))
    expected = -logp[np.arange(N), y_host][mask_host == 1].mean()
    assert abs(float(loss) - expected) < 1e-12
    dz = backend.asnumpy(ops.cross_entropy_backward(p, y, mask))
    assert (dz[mask_host == 0] == 0).all()
    num = numerical_gradient(lambda: ops.cross_entropy(z, y, mask)[0], z)
    assert rel_error(dz, num) < TOL
    # an all-masked batch gives 0, not 0/0
    none = backend.asarray(np.zeros(N, dtype=int))
    assert float(ops.cross_entropy(z, y, none)[0]) == 0.0
    assert np.isfinite(backend.asnumpy(ops.cross_entropy_backward(p, y, none))).all()


def test_cross_entropy_matches_log_softmax_definition(backend):
    (z,) = _arrays(backend, 6, (5, 3))
    y_host = np.array([0, 2, 1, 1, 0])
    loss, _ = ops.cross_entropy(z, backend.asarray(y_host))
    logp = backend.asnumpy(ops.log_softmax(z))
    assert abs(float(loss) + logp[np.arange(5), y_host].mean()) < 1e-12


def test_mse_and_its_derivative(backend):
    pred, target = _arrays(backend, 7, (3, 4), (3, 4))
    diff = backend.asnumpy(pred) - backend.asnumpy(target)
    assert abs(float(ops.mse(pred, target)) - (diff ** 2).mean()) < 1e-14
    analytic = ops.mse_backward(pred, target, dloss=2.5)
    num = numerical_gradient(lambda: 2.5 * ops.mse(pred, target), pred)
    assert rel_error(analytic, num) < TOL
