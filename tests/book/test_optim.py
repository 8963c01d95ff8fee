"""Optimizers, learning-rate decay and clipping (scratchrnn.book.optim)."""
import json
import math

import numpy as np
import pytest

from scratchrnn.book.optim import (
    SGD,
    Adagrad,
    Adam,
    LRSchedule,
    RMSProp,
    clip_grad_norm,
    clip_grad_norm_on_device,
    clip_grad_value,
    global_grad_norm,
    make_optimizer,
)
from scratchrnn.core.errors import CheckpointError, ConfigError


def one_param(value, grad):
    return {"w": np.array(value, dtype=np.float64)}, {"w": np.array(grad, dtype=np.float64)}


# ---------------------------------------------------------------- hand-computed steps
def test_sgd_plain():
    params, grads = one_param([1.0, -2.0], [0.5, -1.0])
    SGD(lr=0.1).step(params, grads)
    assert np.allclose(params["w"], [0.95, -1.9], rtol=0, atol=1e-15)


def test_sgd_momentum_two_steps():
    params, grads = one_param([1.0], [1.0])
    opt = SGD(lr=0.1, momentum=0.9)
    opt.step(params, grads)                  # v = 1;            p = 1 - 0.1       = 0.9
    opt.step(params, grads)                  # v = 0.9 + 1 = 1.9; p = 0.9 - 0.19   = 0.71
    assert math.isclose(params["w"][0], 0.71, abs_tol=1e-14)


def test_sgd_nesterov_two_steps():
    params, grads = one_param([1.0], [1.0])
    opt = SGD(lr=0.1, momentum=0.9, nesterov=True)
    opt.step(params, grads)                  # v = 1;   p = 1 - 0.1 (1 + 0.9)     = 0.81
    opt.step(params, grads)                  # v = 1.9; p = 0.81 - 0.1 (1 + 1.71) = 0.539
    assert math.isclose(params["w"][0], 0.539, abs_tol=1e-14)


def test_adagrad_two_steps():
    params, grads = one_param([1.0], [2.0])
    opt = Adagrad(lr=0.1, eps=1e-8)
    opt.step(params, grads)                  # mem = 4: p = 1 - 0.1 * 2 / sqrt(4 + 1e-8)
    p1 = 1 - 0.1 * 2 / math.sqrt(4 + 1e-8)
    assert math.isclose(params["w"][0], p1, rel_tol=1e-15)
    opt.step(params, grads)                  # mem = 8
    assert math.isclose(params["w"][0], p1 - 0.1 * 2 / math.sqrt(8 + 1e-8), rel_tol=1e-15)


def test_rmsprop_two_steps():
    params, grads = one_param([1.0], [2.0])
    opt = RMSProp(lr=0.01, decay=0.95, eps=1e-8)
    opt.step(params, grads)                  # ms = 0.05 * 4 = 0.2
    p1 = 1 - 0.01 * 2 / (math.sqrt(0.2) + 1e-8)
    assert math.isclose(params["w"][0], p1, rel_tol=1e-14)
    opt.step(params, grads)                  # ms = 0.95 * 0.2 + 0.2 = 0.39
    assert math.isclose(params["w"][0], p1 - 0.01 * 2 / (math.sqrt(0.39) + 1e-8), rel_tol=1e-14)


def test_adam_bias_correction_two_steps():
    params, grads = one_param([1.0], [2.0])
    opt = Adam(lr=0.1)
    opt.step(params, grads)                  # m_hat = 2, v_hat = 4: step = 0.1 * 2 / (2 + eps)
    p1 = 1 - 0.1 * 2 / (2 + 1e-8)
    assert math.isclose(params["w"][0], p1, rel_tol=1e-14)
    grads["w"][0] = -1.0
    opt.step(params, grads)
    m = 0.9 * 0.2 + 0.1 * -1.0               # 0.08
    v = 0.999 * 0.004 + 0.001 * 1.0          # 0.004996
    m_hat, v_hat = m / (1 - 0.9 ** 2), v / (1 - 0.999 ** 2)
    assert math.isclose(params["w"][0], p1 - 0.1 * m_hat / (math.sqrt(v_hat) + 1e-8), rel_tol=1e-14)
    assert opt.t == 2


@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam"])
def test_update_is_in_place_and_keeps_dtype(name):
    w = np.ones((3, 4), dtype=np.float32)
    params, grads = {"w": w}, {"w": np.full((3, 4), 0.5, dtype=np.float32)}
    make_optimizer(name, lr=0.1).step(params, grads)
    assert params["w"] is w and w.dtype == np.float32 and (w < 1).all()


def test_step_needs_a_gradient_for_every_parameter():
    with pytest.raises(KeyError):
        SGD(0.1).step({"a": np.zeros(2), "b": np.zeros(2)}, {"a": np.zeros(2)})


# ----------------------------------------------------------------- save and restore
@pytest.mark.parametrize("name,kw", [("sgd", {"momentum": 0.9, "nesterov": True}), ("sgd", {}),
                                     ("adagrad", {}), ("rmsprop", {"decay": 0.9}),
                                     ("adam", {"beta1": 0.8})])
def test_state_dict_round_trip_continues_bit_identically(name, kw):
    rng = np.random.default_rng(0)
    shapes = {"W": (4, 3), "b": (3,)}
    grads_seq = [{k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
                 for _ in range(6)]
    params = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    opt = make_optimizer(name, lr=0.01, **kw)
    for g in grads_seq[:3]:
        opt.step(params, g)
    arrays, meta = opt.state_dict()
    meta = json.loads(json.dumps(meta))
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    resumed_params = {k: v.copy() for k, v in params.items()}
    resumed = make_optimizer(name, lr=1.0)           # hyper-parameters come from meta
    resumed.load_state_dict({k: v.copy() for k, v in arrays.items()}, meta, "numpy")
    assert resumed.t == 3 and resumed.lr == opt.lr
    for g in grads_seq[3:]:
        opt.step(params, g)
        resumed.step(resumed_params, g)
    for k in shapes:
        assert np.array_equal(params[k], resumed_params[k])


def test_state_dict_is_a_snapshot():
    params, grads = one_param([1.0], [1.0])
    opt = Adam(0.1)
    opt.step(params, grads)
    arrays, _ = opt.state_dict()
    before = arrays["m/w"].copy()
    opt.step(params, grads)
    assert np.array_equal(arrays["m/w"], before)


def test_load_state_dict_refuses_another_optimizer():
    arrays, meta = Adam(0.1).state_dict()
    with pytest.raises(CheckpointError, match="adam"):
        RMSProp(0.1).load_state_dict(arrays, meta)
    with pytest.raises(CheckpointError, match="unknown entry"):
        Adam(0.1).load_state_dict({"nonsense": np.zeros(1)}, meta)
    with pytest.raises(CheckpointError, match="lacks"):
        Adam(0.1).load_state_dict({}, {"name": "adam", "lr": 0.1})


# ------------------------------------------------------------------------ settings
def test_make_optimizer_errors():
    with pytest.raises(ConfigError, match="sgd, adagrad, rmsprop, adam"):
        make_optimizer("lbfgs", 0.1)
    for lr in (0, -1e-3, float("nan"), float("inf"), "fast"):
        with pytest.raises(ConfigError, match="lr"):
            make_optimizer("adam", lr)
    with pytest.raises(ConfigError, match="momentum"):
        make_optimizer("adam", 0.1, momentum=0.9)
    with pytest.raises(ConfigError, match="momentum"):
        make_optimizer("sgd", 0.1, momentum=1.5)
    with pytest.raises(ConfigError, match="Nesterov"):
        make_optimizer("sgd", 0.1, nesterov=True)
    with pytest.raises(ConfigError, match="beta2"):
        make_optimizer("adam", 0.1, beta2=1.0)
    assert isinstance(make_optimizer(" RMSProp ", 0.1), RMSProp)


def test_lr_schedule_decays_after_decay_after_epochs():
    sched = LRSchedule(0.1, decay_rate=0.5, decay_after=2)
    assert [sched.lr_at(e) for e in range(5)] == [0.1, 0.1, 0.1, 0.05, 0.025]
    opt = SGD(0.1)
    assert sched.apply(opt, 4) == 0.025 and opt.lr == 0.025
    assert LRSchedule(0.1).lr_at(100) == 0.1
    for kw in ({"decay_rate": 1.5}, {"decay_rate": 0}, {"decay_after": -1}, {"decay_after": 1.5}):
        with pytest.raises(ConfigError):
            LRSchedule(0.1, **kw)


# ------------------------------------------------------------------------ clipping
def test_clip_grad_norm_scales_to_max_norm_in_place():
    a, b = np.array([3.0, 0.0], dtype=np.float32), np.array([[4.0]], dtype=np.float32)
    grads = {"a": a, "b": b}
    assert math.isclose(global_grad_norm(grads), 5.0)
    norm = clip_grad_norm(grads, max_norm=1.0)
    assert math.isclose(norm, 5.0)
    assert grads["a"] is a and a.dtype == np.float32
    assert np.allclose(a, [0.6, 0.0]) and np.allclose(b, [[0.8]])
    assert math.isclose(global_grad_norm(grads), 1.0, rel_tol=1e-6)


def test_clip_grad_norm_leaves_small_grads_alone():
    grads = {"a": np.array([0.3, 0.4])}
    assert math.isclose(clip_grad_norm(grads, 1.0), 0.5)
    assert np.array_equal(grads["a"], [0.3, 0.4])


@pytest.mark.parametrize("values", [[0.0, 0.0], [3.0, 4.0], [0.3, 0.4], [0.6, 0.8],
                                    [np.inf, 1.0], [np.nan, 1.0]])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_norm_on_device_equals_the_host_decision(values, dtype):
    """The same norm and, bit for bit, the same gradients as clip_grad_norm: for a zero norm
    (no division by it), below, at and above the limit, and for inf and nan (left as they are)."""
    rng = np.random.default_rng(len(values))
    host = {"a": np.array(values, dtype), "b": rng.standard_normal((3, 2)).astype(dtype) * 1e-3}
    device = {k: v.copy() for k, v in host.items()}
    with np.errstate(all="raise"):
        norm = clip_grad_norm_on_device(device, 1.0)
    want = clip_grad_norm(host, 1.0)
    assert np.shape(norm) == () and (float(norm) == want or (math.isnan(want) and np.isnan(norm)))
    for k in host:
        np.testing.assert_array_equal(device[k], host[k])


def test_clip_grad_norm_reports_non_finite_without_scaling():
    grads = {"a": np.array([np.inf, 1.0])}
    assert clip_grad_norm(grads, 1.0) == math.inf
    assert grads["a"][1] == 1.0
    with pytest.raises(ConfigError, match="max_norm"):
        clip_grad_norm(grads, 0.0)


def test_clip_grad_value_in_place():
    g = np.array([-3.0, 0.5, 2.0])
    clip_grad_value({"g": g}, 1.0)
    assert np.array_equal(g, [-1.0, 0.5, 1.0])
    with pytest.raises(ConfigError, match="clip"):
        clip_grad_value({"g": g}, -1)
