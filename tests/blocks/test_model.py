"""The language model (scratchrnn.blocks.model.CharLM) and its parts, checked in float64.

Every backward pass here is compared with central differences (scratchrnn.book.gradcheck)
at a normwise relative error below 1e-6: the embedding lookup, the output head, the
softmax cross-entropy (with and without a mask), and the whole model end to end --
the loss with respect to every parameter and the initial state, for every cell, with
one-hot input and with a learned embedding, with a padding mask and with dropout
(the dropout mask held fixed by re-seeding it before every evaluation).
"""
import numpy as np
import pytest

from host import to_host
from scratchrnn.blocks.embedding import Embedding, OneHot
from scratchrnn.blocks.linear import Linear
from scratchrnn.blocks.model import CharLM
from scratchrnn.book import ops
from scratchrnn.book.batching import BatchStream
from scratchrnn.book.gradcheck import check_function, numerical_gradient, rel_error
from scratchrnn.core.backend import get_backend
from scratchrnn.core.errors import ConfigError, ShapeError

TOL = 1e-6
CPU = get_backend("numpy")
F64 = np.float64


def assert_rows_pass(rows):
    bad = [(r.name, r.max_rel_error) for r in rows if not r.passed or not r.max_rel_error < TOL]
    assert not bad, f"gradient check failed: {bad}"


# --------------------------------------------------------------------- the parts
def test_embedding_backward_matches_finite_differences():
    rng = np.random.default_rng(0)
    V, E, T, B = 7, 5, 6, 3
    emb = Embedding(V, E, rng, CPU, F64)
    ids = rng.integers(0, V, size=(T, B))
    ids[0, 0] = ids[1, 0] = ids[2, 2] = 3          # repeated rows must be summed, not overwritten
    w = rng.standard_normal((T, B, E))             # L = sum(x * w): dL/dx = w

    emb.grads["W"][...] = 0
    x = emb.forward(ids)
    assert x.shape == (T, B, E)
    np.testing.assert_array_equal(x, emb.params["W"][ids])
    emb.backward(w)
    rows = check_function(lambda: float((emb.forward(ids) * w).sum()),
                          {"W": emb.params["W"]}, {"W": emb.grads["W"].copy()})
    assert_rows_pass(rows)
    # rows of tokens that never occur get no gradient at all
    unused = sorted(set(range(V)) - set(ids.ravel().tolist()))
    if unused:
        assert not emb.grads["W"][unused].any()


def test_embedding_backward_accumulates():
    rng = np.random.default_rng(1)
    emb = Embedding(4, 3, rng, CPU, F64)
    ids = np.array([[0, 1], [1, 1]])
    dx = rng.standard_normal((2, 2, 3))
    emb.grads["W"][...] = 0
    emb.forward(ids)
    emb.backward(dx)
    once = emb.grads["W"].copy()
    emb.backward(dx)
    np.testing.assert_allclose(emb.grads["W"], 2 * once)
    np.testing.assert_allclose(once[1], dx[0, 1] + dx[1, 0] + dx[1, 1])


def test_one_hot_is_one_hot():
    oh = OneHot(5, CPU, F64)
    ids = np.array([[0, 4], [2, 2]])
    x = oh.forward(ids)
    assert x.shape == (2, 2, 5)
    np.testing.assert_array_equal(x.argmax(-1), ids)
    np.testing.assert_array_equal(x.sum(-1), np.ones((2, 2)))
    assert oh.params == {}


def test_linear_head_backward_matches_finite_differences():
    rng = np.random.default_rng(2)
    N, H, V = 6, 4, 5
    head = Linear(H, V, rng, CPU, F64)
    h = rng.standard_normal((N, H))
    w = rng.standard_normal((N, V))
    for g in head.grads.values():
        g[...] = 0
    head.forward(h)
    dh = head.backward(w)
    loss = lambda: float((head.forward(h) * w).sum())       # noqa: E731
    rows = check_function(loss, {"W": head.params["W"], "b": head.params["b"], "h": h},
                          {"W": head.grads["W"].copy(), "b": head.grads["b"].copy(), "h": dh})
    assert_rows_pass(rows)


def manual_cross_entropy(logits, targets, mask=None):
    """Mean NLL written out with a max-shifted log-sum-exp, in float64, one row at a time."""
    total, count = 0.0, 0.0
    logits = to_host(logits)
    for n in range(logits.shape[0]):
        z = logits[n].astype(F64)
        lse = z.max() + np.log(np.exp(z - z.max()).sum())
        weight = 1.0 if mask is None else float(mask[n])
        total += weight * (lse - z[targets[n]])
        count += weight
    return total / max(count, 1.0)


@pytest.mark.parametrize("masked", [False, True])
def test_cross_entropy_value_and_backward(masked):
    rng = np.random.default_rng(3)
    N, V = 9, 6
    logits = rng.standard_normal((N, V)) * 3
    targets = rng.integers(0, V, size=N)
    mask = (rng.random(N) < 0.6) if masked else None
    if masked:
        mask[0], mask[1] = True, False
    loss, p = ops.cross_entropy(logits, targets, mask)
    assert float(loss) == pytest.approx(manual_cross_entropy(logits, targets, mask), rel=1e-12)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-12)
    dlogits = ops.cross_entropy_backward(p, targets, mask)
    num = numerical_gradient(lambda: float(ops.cross_entropy(logits, targets, mask)[0]), logits)
    assert rel_error(dlogits, num) < TOL
    if masked:                                   # masked rows get exactly zero gradient
        assert not dlogits[~mask].any()


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, 0.0, -1000.0], [-1e4, 1e4, 0.0]])
    loss, p = ops.cross_entropy(logits, np.array([0, 1]))
    assert np.isfinite(float(loss)) and float(loss) == pytest.approx(0.0, abs=1e-12)
    assert np.isfinite(p).all()


# --------------------------------------------------------------- the whole model
def make_model(cell, embedding_size=0, dropout=0.0, nonlinearity="tanh", V=6, H=4, L=2, seed=0):
    return CharLM(V, cell=cell, hidden_size=H, num_layers=L, embedding_size=embedding_size,
                  dropout=dropout, nonlinearity=nonlinearity, dtype="float64", seed=seed)


def random_problem(model, T=4, B=3, seed=0, masked=False):
    """ids, targets (T, B); a random initial state; random weights on the final state."""
    rng = np.random.default_rng(seed + 100)
    V, L, H = model.vocab_size, model.config["num_layers"], model.config["hidden_size"]
    ids = rng.integers(0, V, size=(T, B))
    targets = rng.integers(0, V, size=(T, B))
    mask = None
    if masked:
        mask = rng.random((T, B)) < 0.6
        mask[0, 0], mask[-1, -1] = True, False
    n_states = 2 if model.config["cell"] == "lstm" else 1
    on_model = model.backend.asarray            # states live where the model does (CuPy: on the GPU)
    states = [on_model(rng.standard_normal((L, B, H)) * 0.5) for _ in range(n_states)]
    w_states = [on_model(rng.standard_normal((L, B, H))) for _ in range(n_states)]
    return ids, targets, mask, states, w_states


def model_gradcheck(model, ids, targets, mask, states, w_states, dropout_seed=None,
                    with_dstate=True, region=None):
    """Check d(loss [+ <final state, w>]) / d(every param, h0 [, c0]) for ``model``."""
    lstm = len(states) == 2
    as_state = (lambda s: tuple(s)) if lstm else (lambda s: s[0])

    def objective():
        if dropout_seed is not None:
            model.rnn.seed_dropout(dropout_seed)       # the same dropout mask every time
        loss, final = model.loss(ids, targets, as_state(states), mask)
        if with_dstate:
            finals = final if lstm else (final,)
            loss += sum(float((f * w).sum()) for f, w in zip(finals, w_states))
        return loss

    model.train()
    model.zero_grad()
    objective()
    dx, dstate0 = model.backward(as_state(w_states) if with_dstate else None)
    assert dx.shape == ids.shape + (model.embed.output_size,)
    grads = {k: g.copy() for k, g in model.grads.items()}
    wrt = dict(model.params)
    for name, s, ds in zip(("h0", "c0"), states, dstate0 if lstm else (dstate0,)):
        wrt[name], grads[name] = s, ds
    rows = check_function(objective, wrt, grads, region=region)
    assert {r.name for r in rows} == set(model.params) | set(["h0", "c0"][:len(states)])
    assert_rows_pass(rows)
    return rows


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("embedding_size", [0, 3])
def test_model_gradcheck_end_to_end(cell, embedding_size):
    model = make_model(cell, embedding_size)
    ids, targets, mask, states, w_states = random_problem(model, seed=1)
    rows = model_gradcheck(model, ids, targets, None, states, w_states)
    assert ("embed.W" in {r.name for r in rows}) == (embedding_size > 0)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("embedding_size", [0, 3])
def test_model_gradcheck_with_mask_and_dropout(cell, embedding_size):
    model = make_model(cell, embedding_size, dropout=0.4, seed=2)
    ids, targets, mask, states, w_states = random_problem(model, seed=2, masked=True)
    model_gradcheck(model, ids, targets, mask, states, w_states, dropout_seed=1234)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_model_gradcheck_with_mask_only_and_no_final_state_gradient(cell):
    model = make_model(cell, 2, L=1, seed=3)
    ids, targets, mask, states, w_states = random_problem(model, T=5, B=2, seed=3, masked=True)
    model_gradcheck(model, ids, targets, mask, states, w_states, with_dstate=False)


def test_model_gradcheck_relu_rnn():
    model = make_model("rnn", 3, nonlinearity="relu", seed=4)
    ids, targets, mask, states, w_states = random_problem(model, seed=4, masked=True)
    region = lambda: np.concatenate([to_host(c.hs > 0).ravel() for c in model.rnn.caches])  # noqa: E731
    rows = model_gradcheck(model, ids, targets, mask, states, w_states, region=region)
    assert sum(r.skipped for r in rows) < 10


def test_dropout_really_drops_and_is_fixed_by_seed():
    """The gradient check with dropout is meaningful only if the mask changes the loss
    and re-seeding reproduces it exactly."""
    model = make_model("lstm", 0, dropout=0.5, seed=5)
    ids, targets, _, states, _ = random_problem(model, seed=5)
    model.train()
    losses = []
    for s in (1, 1, 2):
        model.rnn.seed_dropout(s)
        losses.append(model.loss(ids, targets, tuple(states))[0])
    assert losses[0] == losses[1]
    assert losses[0] != losses[2]
    model.eval()
    a = model.loss(ids, targets, tuple(states))[0]
    model.rnn.seed_dropout(99)
    assert model.loss(ids, targets, tuple(states))[0] == a      # no dropout in eval mode


def test_backward_with_no_final_state_gradient_equals_zero_dstate():
    model = make_model("gru", 3, seed=6)
    ids, targets, _, states, _ = random_problem(model, seed=6)
    model.zero_grad()
    model.loss(ids, targets, states[0])
    _, d_none = model.backward()
    g_none = {k: g.copy() for k, g in model.grads.items()}
    model.zero_grad()
    model.loss(ids, targets, states[0])
    _, d_zero = model.backward(np.zeros_like(states[0]))
    np.testing.assert_array_equal(to_host(d_none), to_host(d_zero))
    for k in g_none:
        np.testing.assert_array_equal(to_host(g_none[k]), to_host(model.grads[k]))


# ---------------------------------------------------------------- masked loss
def test_masked_loss_equals_manual_computation():
    model = make_model("lstm", 3, V=7, seed=7)
    rng = np.random.default_rng(7)
    T, B = 5, 3
    ids = rng.integers(0, 7, size=(T, B))
    targets = rng.integers(0, 7, size=(T, B))
    mask = rng.random((T, B)) < 0.5
    mask[0, 0], mask[1, 0] = True, False
    logits, _ = model.forward(ids)
    want = manual_cross_entropy(logits.reshape(T * B, 7), targets.ravel(), mask.ravel())
    loss, _ = model.loss(ids, targets, mask=mask)
    assert loss == pytest.approx(want, rel=1e-12)
    # unmasked mean differs (the mask is really used)
    plain, _ = model.loss(ids, targets)
    assert plain == pytest.approx(manual_cross_entropy(logits.reshape(T * B, 7), targets.ravel()),
                                  rel=1e-12)
    assert plain != pytest.approx(loss, rel=1e-6)


def test_masked_targets_do_not_matter():
    """Changing the target of a masked position changes neither the loss nor any gradient."""
    model = make_model("rnn", 2, V=5, seed=8)
    rng = np.random.default_rng(8)
    ids = rng.integers(0, 5, size=(4, 2))
    targets = rng.integers(0, 5, size=(4, 2))
    mask = np.ones((4, 2), bool)
    mask[3, :] = False
    results = []
    for fill in (0, 4):
        t = targets.copy()
        t[3, :] = fill
        model.zero_grad()
        loss, _ = model.loss(ids, t, mask=mask)
        model.backward()
        results.append((loss, {k: g.copy() for k, g in model.grads.items()}))
    assert results[0][0] == results[1][0]
    for k in results[0][1]:
        np.testing.assert_array_equal(to_host(results[0][1][k]), to_host(results[1][1][k]))


def test_fully_masked_batch_gives_zero_loss_and_zero_grads():
    model = make_model("gru", 0, V=4, seed=9)
    ids = np.zeros((3, 2), dtype=np.int64)
    model.zero_grad()
    loss, _ = model.loss(ids, ids, mask=np.zeros((3, 2), bool))
    model.backward()
    assert loss == 0.0
    assert all(not g.any() for g in model.grads.values())


def test_batch_stream_padding_mask_drives_the_masked_loss():
    """BatchStream with a pad id: the mask is False exactly where y is padding, and the
    model's loss with that mask is the mean over the real tokens only."""
    pad = 0
    rng = np.random.default_rng(10)
    ids = rng.integers(1, 6, size=61)
    ids[10:17] = pad                       # a run of padding
    ids[40] = pad
    stream = BatchStream(ids, batch_size=2, seq_len=6, pad_id=pad)
    model = make_model("lstm", 3, V=6, seed=10)
    saw_pad = False
    for batch in stream:
        np.testing.assert_array_equal(to_host(batch.mask), to_host(batch.y != pad))
        saw_pad |= bool((~batch.mask).any())
        logits, _ = model.forward(batch.x)
        T, B = batch.y.shape
        want = manual_cross_entropy(logits.reshape(T * B, -1), batch.y.ravel(), batch.mask.ravel())
        loss, _ = model.loss(batch.x, batch.y, mask=batch.mask)
        assert loss == pytest.approx(want, rel=1e-12)
    assert saw_pad
    assert BatchStream(ids, batch_size=2, seq_len=6).next_batch().mask is None


# ---------------------------------------------------------- construction, io
def test_params_and_grads_are_the_parts_arrays():
    model = make_model("lstm", 3)
    assert set(model.params) == set(model.grads)
    assert model.params["embed.W"] is model.embed.params["W"]
    assert model.params["rnn.l1.W_h"] is model.rnn.params["l1.W_h"]
    assert model.params["head.b"] is model.head.params["b"]
    assert model.num_params() == sum(p.size for p in model.params.values())
    onehot = make_model("lstm", 0)
    assert not any(k.startswith("embed.") for k in onehot.params)


def test_state_arrays_round_trip_and_architecture_mismatch():
    a, b = make_model("gru", 3, seed=1), make_model("gru", 3, seed=2)
    assert not np.array_equal(to_host(a.params["head.W"]), to_host(b.params["head.W"]))
    b.load_arrays(a.state_arrays())
    for k in a.params:
        np.testing.assert_array_equal(to_host(a.params[k]), to_host(b.params[k]))
    with pytest.raises(ConfigError):
        make_model("gru", 3, H=5).load_arrays(a.state_arrays())
    with pytest.raises(ConfigError):
        make_model("lstm", 3).load_arrays(a.state_arrays())


@pytest.mark.parametrize("kwargs", [dict(cell="tree"), dict(hidden_size=0), dict(num_layers=0),
                                    dict(embedding_size=-1), dict(vocab_size=0),
                                    dict(dropout=1.0)])
def test_bad_configs_raise_config_error(kwargs):
    args = dict(vocab_size=5, cell="lstm", hidden_size=4, num_layers=2)
    args.update(kwargs)
    with pytest.raises(ConfigError):
        CharLM(**args)


def test_forward_rejects_bad_ids():
    model = make_model("rnn")
    with pytest.raises(ShapeError):
        model.forward(np.zeros(5, dtype=np.int64))
    with pytest.raises(ShapeError):
        model.forward(np.zeros((2, 2)))
