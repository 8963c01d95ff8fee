"""The interpretable-neuron finder: which single units track a known property of the text?

    feats = text_features(text, prefix)          # name -> (N,) float, from ``features``
    found = find_neurons(acts, feats, top=3)     # name -> [Neuron(layer, kind, unit, r), ...]

Every unit of every layer (its hidden state h, for an LSTM its cell state c as well, and
optionally its gates) is a trace over the N characters of the analysed text. For each
feature the Pearson correlation of every trace with the feature is computed in one matrix
product of the standardised traces and the standardised feature:

    r_u = mean_t (a_u(t) - mean a_u) (f(t) - mean f) / (std a_u * std f)

and the units with the largest |r| are returned, sign included (a unit that is *off* inside
strings is as interpretable as one that is on). A feature that is constant over the text
(no comment in it, say) has no correlation and returns no units; so does a unit that never
changes.
"""
from __future__ import annotations

from dataclasses import dataclass

from scratchrnn.core.backend import CPU

np = CPU.xp

DEFAULT_KINDS = ("h", "c")


@dataclass(frozen=True)
class Neuron:
    """One unit: ``layer`` (0-based), ``kind`` ("h", "c", or a gate name), ``unit`` (0..H-1),
    and ``r``, its correlation with the feature it was found for."""

    layer: int
    kind: str
    unit: int
    r: float

    @property
    def label(self):
        return f"layer {self.layer + 1} {self.kind}[{self.unit}]"


def text_features(text, prefix="", names=None):
    """name -> (N,) float64 ground-truth features of ``text`` (``features.ALL_FEATURES``)."""
    from scratchrnn.analysis.features import ALL_FEATURES

    names = list(ALL_FEATURES) if names is None else list(names)
    return {name: ALL_FEATURES[name](text, prefix) for name in names}


def unit_matrix(acts, kinds=DEFAULT_KINDS):
    """(A (N, U) float64, index [(layer, kind, unit)] * U): the traces of all units of the
    given kinds, every layer, side by side. Kinds a layer lacks are skipped."""
    columns, index = [], []
    for k, layer in enumerate(acts.layers if hasattr(acts, "layers") else acts):
        for kind in kinds:
            if kind in layer:
                a = np.asarray(layer[kind])
                columns.append(a)
                index.extend((k, kind, u) for u in range(a.shape[1]))
    if not columns:
        raise ValueError(f"The activations hold none of the kinds {kinds}.")
    return np.concatenate(columns, axis=1).astype(np.float64), index


def correlations(A, feature):
    """(U,) Pearson r of each column of A (N, U) with feature (N,); NaN for a constant
    column, all NaN for a constant feature."""
    A = np.asarray(A, dtype=np.float64)
    f = np.asarray(feature, dtype=np.float64).reshape(-1)
    if A.shape[0] != f.size:
        raise ValueError(f"The feature has {f.size} values but the activations {A.shape[0]} steps.")
    fc = f - f.mean()
    fs = np.sqrt((fc * fc).mean())
    Ac = A - A.mean(axis=0)
    As = np.sqrt((Ac * Ac).mean(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (Ac.T @ fc) / (A.shape[0] * As * fs)
    # a (numerically) constant trace or feature has no correlation
    r[(As <= 1e-12 * (1 + np.abs(A).max(axis=0))) | ~np.isfinite(r)] = np.nan
    if not fs > 1e-12 * (1 + np.abs(f).max()):
        r[:] = np.nan
    return r


def find_neurons(acts, feats, top=3, kinds=DEFAULT_KINDS):
    """For each feature (name -> (N,)), the ``top`` units with the largest |r|.

    acts: ``activations.Activations`` (or a list of per-layer dicts name -> (N, H)).
    Returns name -> list of Neuron, best first (empty for a constant feature).
    """
    A, index = unit_matrix(acts, kinds)
    out = {}
    for name, f in feats.items():
        r = correlations(A, f)
        ok = np.flatnonzero(np.isfinite(r))
        best = ok[np.argsort(-np.abs(r[ok]), kind="stable")][:top]
        out[name] = [Neuron(index[j][0], index[j][1], index[j][2], float(r[j])) for j in best]
    return out


def trace(acts, neuron):
    """(N,) the activation trace of ``neuron`` (a Neuron) in ``acts``."""
    layers = acts.layers if hasattr(acts, "layers") else acts
    return np.asarray(layers[neuron.layer][neuron.kind][:, neuron.unit], dtype=np.float64)


def best_window(feature, length, step=None):
    """Start of the ``length``-character window where ``feature`` (N,) varies most (its
    variance; the first such window), so a heatmap shows the feature changing."""
    f = np.asarray(feature, dtype=np.float64).reshape(-1)
    n = f.size
    if n <= length:
        return 0
    step = step or max(1, length // 4)
    starts = np.arange(0, n - length + 1, step)
    var = np.array([f[s:s + length].var() for s in starts])
    return int(starts[int(np.argmax(var))])
