"""Analyses of models, each on a small model with a known answer: activations (chunked pass
= one pass; forced gates saturate), saliency (a model that sees only the last character;
causality; finite differences), gradient flow (geometric decay of a small-weight RNN; the
state-only backward = the cells' step_backward), PCA (a planted plane), the neuron finder
(a planted quote unit) and the n-gram comparison (an "RNN" better only at closers)."""
import numpy as np
import pytest

from host import to_host
from scratchrnn.analysis import activations, compare, gradient_flow, neurons, pca, saliency
from scratchrnn.analysis.ngram import CATEGORIES, NGramModel
from scratchrnn.blocks.layers import RNN
from scratchrnn.blocks.model import CharLM
from scratchrnn.book import ops
from scratchrnn.book.cells import gru, lstm, rnn

V = 12


def make_model(cell, H=8, L=2, E=0, seed=0, **kw):
    return CharLM(V, cell, H, L, embedding_size=E, dtype="float64", seed=seed, **kw)


def random_ids(n, seed=0):
    return np.random.default_rng(seed).integers(0, V, n)


# ------------------------------------------------------------------ activations
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_chunked_pass_equals_one_forward(cell):
    model = make_model(cell)
    ids = random_ids(50)
    acts = activations.collect(model, ids, chunk=7)
    logits, _ = model.forward(ids[:, None])                   # one pass over everything
    for k, cache in enumerate(model.rnn.caches):
        np.testing.assert_allclose(acts[k]["h"], to_host(cache.hs[:, 0]), atol=1e-12)
        if cell == "lstm":
            np.testing.assert_allclose(acts[k]["c"], to_host(cache.cs[:, 0]), atol=1e-12)
        H = cache.hs.shape[-1]
        for g, name in enumerate(activations.GATE_NAMES[cell]):
            np.testing.assert_allclose(acts[k][name], to_host(cache.gates[:, 0, g * H:(g + 1) * H]),
                                       atol=1e-12)
    logp = to_host(ops.log_softmax(logits[:, 0]))
    np.testing.assert_allclose(acts.next_logp, logp[np.arange(49), ids[1:]], atol=1e-12)
    assert set(acts.names()) == set(activations._names(cell))


def test_collect_keeps_mode_and_rejects_bad_ids():
    model = make_model("lstm", dropout=0.5).train()
    a1 = activations.collect(model, random_ids(30), chunk=8)
    a2 = activations.collect(model, random_ids(30), chunk=30)
    np.testing.assert_allclose(a1[1]["h"], a2[1]["h"], atol=1e-12)   # no dropout while analysing
    assert model.rnn.training
    with pytest.raises(Exception, match="vocabulary"):
        activations.collect(model, np.array([0, V]))


def test_forced_open_forget_gate_is_right_saturated():
    model = make_model("lstm", H=6, L=2)
    H = 6
    for k in range(2):
        p = model.rnn.layer_params(k)
        for name in ("W_x", "W_h"):
            p[name][:, H:2 * H] = 0.0                          # the forget gate ignores everything ...
            p[name][:, :H] = 0.0
        p["b_x"][H:2 * H], p["b_h"][H:2 * H] = 30.0, 0.0       # ... and is always open
        p["b_x"][:H], p["b_h"][:H] = -30.0, 0.0                # the input gate always shut
    acts = activations.collect(model, random_ids(200), chunk=64)
    sat = activations.gate_saturation(acts)
    left, right, layer = sat["f"]
    assert right.shape == (2 * H,) and np.all(right == 1.0) and np.all(left == 0.0)
    assert list(layer) == [0] * H + [1] * H
    assert np.all(sat["i"][0] == 1.0) and np.all(sat["i"][1] == 0.0)
    assert set(sat) == {"i", "f", "o"}
    rows = activations.saturation_summary(sat)
    f_rows = [r for r in rows if r["gate"] == "f"]
    assert [r["mean right (>0.9)"] for r in f_rows] == [1.0, 1.0]


def test_gru_forced_update_gate_and_rnn_has_none():
    model = make_model("gru", H=5, L=1)
    p = model.rnn.layer_params(0)
    p["W_x"][:, 5:10] = 0.0
    p["W_h"][:, 5:10] = 0.0
    p["b_x"][5:10], p["b_h"][5:10] = -30.0, 0.0                # z always shut
    sat = activations.gate_saturation(activations.collect(model, random_ids(40)))
    assert np.all(sat["z"][0] == 1.0) and np.all(sat["z"][1] == 0.0)
    assert activations.gate_saturation(activations.collect(make_model("rnn"), random_ids(10))) == {}


# ------------------------------------------------------------------ saliency
def test_saliency_of_a_last_character_model_is_zero_before_the_target():
    model = make_model("rnn", H=8, L=2)
    for k in range(2):
        model.rnn.layer_params(k)["W_h"][...] = 0.0            # each step sees only its input
    ids = random_ids(40)
    S = saliency.saliency_matrix(model, ids)                   # all 39 targets at once
    for t in range(39):
        assert np.all(S[t, :t] == 0.0) and np.all(S[t, t + 1:] == 0.0)
        assert S[t, t] > 0.0


def test_saliency_is_causal_and_batched_rows_equal_single_targets():
    model = make_model("lstm", H=8, L=2, E=5)
    ids = random_ids(30)
    S = saliency.saliency_matrix(model, ids, [3, 17, 28])
    assert S.shape == (3, 29)
    for k, t in enumerate([3, 17, 28]):
        assert np.all(S[k, t + 1:] == 0.0) and np.all(S[k, :t + 1] > 0.0)
        np.testing.assert_allclose(S[k], saliency.saliency(model, ids, t), rtol=1e-10, atol=1e-14)
    assert all(abs(g).max() == 0 for g in model.grads.values())   # no gradient left behind


class _FixedInput:
    """Stands in for the embedding: returns given input vectors, so they can be nudged."""

    def __init__(self, X):
        self.X, self.output_size = X, X.shape[-1]

    def forward(self, ids):
        return self.X

    def backward(self, dx):
        pass


def test_saliency_is_the_gradient_at_the_input_vectors():
    model = make_model("gru", H=6, L=2, E=4, seed=3)
    ids = random_ids(12, seed=1)
    t = 9
    S = saliency.saliency_matrix(model, ids, [t])[0]
    X = model.embed.forward(ids[:-1, None]).copy()             # (T, 1, E)
    model.embed = _FixedInput(X)
    mask = np.zeros((11, 1))
    mask[t] = 1.0
    eps = 1e-6
    for s in (0, 4, 9):
        g = np.empty(4)
        for e in range(4):
            X[s, 0, e] += eps
            up, _ = model.loss(ids[:-1, None], ids[1:, None], mask=mask)
            X[s, 0, e] -= 2 * eps
            down, _ = model.loss(ids[:-1, None], ids[1:, None], mask=mask)
            X[s, 0, e] += eps
            g[e] = (up - down) / (2 * eps)
        np.testing.assert_allclose(S[s], np.linalg.norm(g), rtol=1e-6)


def test_grad_input_mode_picks_the_one_hot_component():
    model = make_model("lstm", H=6, L=1)
    ids = random_ids(20)
    gi = saliency.saliency_matrix(model, ids, [15], mode="grad_input")[0]
    model.zero_grad()
    mask = np.zeros((19, 1))
    mask[15] = 1.0
    model.loss(ids[:-1, None], ids[1:, None], mask=mask)
    dx, _ = model.backward()
    np.testing.assert_allclose(gi, np.abs(to_host(dx)[np.arange(19), 0, ids[:-1]]), rtol=1e-12)


def test_long_range_targets_are_far_closers():
    text = "f(a, b)\nx = 'long string here'\ny = (1)\n"
    picked = saliency.long_range_targets(text, 20, count=3)   # windows 20 apart at least
    assert picked == [text.index(")"), text.index("here'") + 4]  # the "(1)" is too close to the quote
    assert saliency.long_range_targets(text, 16) == [text.index(")"), text.rindex(")")]  # quote too far


# ------------------------------------------------------------------ gradient flow
def test_small_weight_rnn_decays_geometrically_at_the_predicted_rate():
    H, a = 16, 0.6
    rng = np.random.default_rng(0)
    layer = RNN(4, H, 1, dtype="float64", seed=0)
    p = layer.layer_params(0)
    Q, _ = np.linalg.qr(rng.standard_normal((H, H)))
    p["W_h"][...] = layer.backend.asarray(a * Q)              # step Jacobian ~ a * Q^T
    p["W_x"][...] *= 1e-5                                     # tiny inputs: tanh is linear
    p["b_x"][...] = p["b_h"][...] = 0.0
    xs = rng.standard_normal((40, 2, 4))
    norms = gradient_flow.layer_flow(layer, xs)[0]["h"]
    assert norms.shape == (41,) and norms[0] == pytest.approx(1.0)
    np.testing.assert_allclose(norms, a ** np.arange(41), rtol=1e-6)
    assert gradient_flow.decay_rate(norms) == pytest.approx(a, rel=1e-6)


def _random_cache(cell, B=3, I=4, H=5, T=6, seed=0):
    rng = np.random.default_rng(seed)
    params = cell.init_params(I, H, rng, gradient_flow.CPU, np.float64)
    xs = rng.standard_normal((T, B, I))
    state0 = (rng.standard_normal((B, H)), rng.standard_normal((B, H))) if cell is lstm \
        else rng.standard_normal((B, H))
    _, _, cache = cell.forward(params, xs, state0)
    return params, cache, rng


@pytest.mark.parametrize("cell", [rnn, gru, lstm])
def test_state_only_backward_equals_step_backward(cell):
    params, cache, rng = _random_cache(cell)
    B, H = cache.hs.shape[1:]
    for t in (0, 3):
        step = gradient_flow._step_cache(cell, cache, t, lambda x: x)
        dstate = (rng.standard_normal((B, H)), rng.standard_normal((B, H))) if cell is lstm \
            else rng.standard_normal((B, H))
        mine = gradient_flow.state_step_backward(cell, params, dstate, step)
        _, ref, _ = cell.step_backward(params, np.zeros((B, H)), dstate, step)
        for m, r in zip(mine if cell is lstm else [mine], ref if cell is lstm else [ref]):
            np.testing.assert_allclose(m, r, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", [gru, lstm])
def test_flow_at_full_distance_equals_the_sequence_backward(cell):
    params, cache, _ = _random_cache(cell, B=2, T=7)
    T, B, H = cache.hs.shape
    flow = gradient_flow.flow_from_cache(cell, params, cache)
    # the same Jacobians from the cell's whole-sequence backward, one probe row at a time
    for which in flow:
        total = 0.0
        for j in range(H):
            probe = np.zeros((B, H))
            probe[:, j] = 1.0
            zero = np.zeros((B, H))
            if cell is lstm:
                dT = (probe, zero) if which == "h" else (zero, probe)
            else:
                dT = probe
            _, d0, _ = cell.backward(params, np.zeros((T, B, H)), dT, cache)
            part = d0 if cell is not lstm else d0[0 if which == "h" else 1]
            total += (part ** 2).sum()
        assert flow[which][-1] == pytest.approx(np.sqrt(total / (B * H)), rel=1e-10)


def test_open_forget_gate_keeps_cell_gradient_and_sweep_orders_biases():
    ids = random_ids(80)
    windows = gradient_flow.text_windows(ids, 60, 1)
    model = make_model("lstm", H=6, L=1)
    p = model.rnn.layer_params(0)
    p["W_x"][:, :12] = 0.0
    p["W_h"][:, :12] = 0.0
    p["b_x"][:6], p["b_x"][6:12] = -40.0, 40.0                # i shut, f open: c_t = c_{t-1}
    p["b_h"][:12] = 0.0
    c = gradient_flow.model_flow(model, windows, warmup=10)[0]["c"]
    assert c.shape == (51,)
    np.testing.assert_allclose(c, 1.0, rtol=1e-9)
    sweep = gradient_flow.untrained_sweep(V, 8, windows, warmup=10, dtype="float64")
    assert list(sweep) == ["RNN", "GRU"] + [f"LSTM fb={b:+g}" for b in gradient_flow.FORGET_BIASES]
    assert sweep["LSTM fb=+10"]["c"][40] > sweep["LSTM fb=+1"]["c"][40] > sweep["LSTM fb=-2"]["c"][40]
    curves = gradient_flow.curves_for_plot(sweep, "c")
    assert set(curves) == {k for k in sweep if k.startswith("LSTM")}


# ------------------------------------------------------------------ PCA
def test_pca_recovers_a_planted_plane():
    rng = np.random.default_rng(0)
    coords = rng.standard_normal((500, 2)) * [5.0, 2.0]       # variances 25 and 4
    basis, _ = np.linalg.qr(rng.standard_normal((10, 2)))
    X = coords @ basis.T + 3.0 + 1e-6 * rng.standard_normal((500, 10))
    proj, ratio, comps = pca.pca(X, 2)
    assert ratio.sum() == pytest.approx(1.0, abs=1e-9)
    cov = np.cov(X.T, bias=True)
    evals = np.sort(np.linalg.eigvalsh(cov))[::-1]
    np.testing.assert_allclose(ratio, evals[:2] / evals.sum(), rtol=1e-8)
    np.testing.assert_allclose(np.abs(comps @ comps.T), np.eye(2), atol=1e-9)
    d_proj = np.linalg.norm(proj[:, None] - proj[None], axis=-1)
    d_true = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.testing.assert_allclose(d_proj, d_true, atol=1e-4)   # a rotation of the plane


def test_pca_classes():
    assert list(pca.pca_classes("a (\n1")) == [2, 1, 3, 0, 4]


# ------------------------------------------------------------------ neuron finder
QUOTED = "x = 'abc' + f(y)\n# note\ns = \"q\" * 2\n" * 20


def test_finder_recovers_a_planted_quote_unit():
    feats = neurons.text_features(QUOTED)
    quote = feats["in_string"]
    N = quote.size
    rng = np.random.default_rng(0)
    layer0 = {"h": rng.standard_normal((N, 6)), "c": rng.standard_normal((N, 6))}
    layer1 = {"h": rng.standard_normal((N, 6)), "c": rng.standard_normal((N, 6))}
    layer1["c"][:, 4] = quote                                  # the planted quote unit
    layer0["h"][:, 2] = -0.5 * feats["column"] + 0.01 * rng.standard_normal(N)   # an anti-column unit
    found = neurons.find_neurons([layer0, layer1], feats, top=2)
    best = found["in_string"][0]
    assert (best.layer, best.kind, best.unit) == (1, "c", 4) and best.r == pytest.approx(1.0)
    assert abs(found["in_string"][1].r) < 0.5
    col = found["column"][0]
    assert (col.layer, col.kind, col.unit) == (0, "h", 2) and col.r < -0.99
    assert best.label == "layer 2 c[4]"
    np.testing.assert_allclose(neurons.trace([layer0, layer1], best), quote)


def test_correlations_match_numpy_and_constants_give_none():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((200, 5))
    A[:, 3] = 7.0                                              # a unit that never moves
    f = A[:, 0] + rng.standard_normal(200)
    r = neurons.correlations(A, f)
    for j in (0, 1, 2, 4):
        assert r[j] == pytest.approx(np.corrcoef(A[:, j], f)[0, 1], abs=1e-12)
    assert np.isnan(r[3])
    found = neurons.find_neurons([{"h": A}], {"flat": np.ones(200), "f": f}, top=3)
    assert found["flat"] == [] and found["f"][0].unit == 0 and len(found["f"]) == 3


def test_best_window_finds_where_the_feature_varies():
    f = np.zeros(1000)
    f[600:640] = 1.0
    start = neurons.best_window(f, 100)
    assert start <= 600 and start + 100 >= 640


# ------------------------------------------------------------------ n-gram comparison
def test_comparison_credits_the_rnn_only_where_it_is_better():
    train = "def f(a, b):\n    return (a + b)\n" * 30
    text = "def g(x):\n    return (x + (x))\n"
    vocab = sorted(set(train + text))
    ng = NGramModel(4, vocab).fit(train).log_probs(text)
    closers = np.array([ch == ")" for ch in text[1:]])
    fake_rnn = np.where(closers, 0.0, ng)                      # certain of every ")" only
    cmp = compare.compare(text, fake_rnn, train, vocab, order=4, extra_orders=(2, 4))
    assert cmp.ngram_loss == pytest.approx(NGramModel(4, vocab).fit(train).loss(text))
    assert cmp.rnn_loss == pytest.approx(-fake_rnn.mean())
    assert cmp.orders[1]["loss"] == pytest.approx(cmp.ngram_loss)
    assert cmp.orders[0]["loss"] == pytest.approx(NGramModel(2, vocab).fit(train).loss(text))
    rows = {r["category"]: r for r in cmp.breakdown["by_category"]}
    assert rows[CATEGORIES[0]]["count"] == 3 and rows[CATEGORIES[0]]["rnn_better"] == 1.0
    assert all(r["rnn_better"] == 0.0 for c, r in rows.items() if c != CATEGORIES[0] and r["count"])
    adv = compare.advantage(cmp)
    assert np.all(adv[~closers] == 0.0) and np.all(adv[closers] > 0.0)
