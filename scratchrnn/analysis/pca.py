"""Principal components of hidden-state trajectories, by the backend's SVD.

    proj, ratio, comps = pca(acts[0]["h"], k=2)      # (N, 2), (2,), (2, H)
    classes = pca_classes(text)                      # (N,) codes into PCA_CLASSES

The states X (N, H) are centred, X - mean = U S Vᵀ is taken with ``xp.linalg.svd``
(``full_matrices=False``) on the model's backend, the projections are U[:, :k] S[:k]
(= (X - mean) V[:, :k]), the components the first k rows of Vᵀ, and the explained
variance ratio S[:k]² / sum S². Signs are fixed so that the largest-magnitude entry of each
component is positive (an SVD may return either sign).
"""
from __future__ import annotations

from scratchrnn.core.backend import CPU, get_backend

np = CPU.xp

PCA_CLASSES = ("newline", "space", "letter", "bracket", "other")
"""The character classes the PCA plot colours by."""


def pca(X, k=2, backend=None):
    """X (N, D) -> (projections (N, k), explained variance ratio (k,), components (k, D)),
    as host float64 arrays, computed with ``backend``'s SVD."""
    be = get_backend(backend)
    xp = be.xp
    A = xp.asarray(X, dtype=xp.float64)
    if A.ndim != 2 or A.shape[0] < 2:
        raise ValueError(f"X must be (N, D) with N >= 2, got shape {tuple(A.shape)}.")
    if not 1 <= k <= min(A.shape):
        raise ValueError(f"k must be in 1..{min(A.shape)}, got {k}.")
    A = A - A.mean(axis=0, keepdims=True)
    U, S, Vt = xp.linalg.svd(A, full_matrices=False)
    U, S, Vt = U[:, :k], S, Vt[:k]
    big = xp.argmax(xp.abs(Vt), axis=1)
    signs = xp.sign(Vt[xp.arange(k), big])
    signs = xp.where(signs == 0, 1.0, signs)
    Vt = Vt * signs[:, None]
    proj = U * (S[:k] * signs)[None, :]
    total = float((S * S).sum())
    ratio = (S[:k] * S[:k]) / total if total > 0 else xp.zeros(k)
    return be.asnumpy(proj), be.asnumpy(ratio), be.asnumpy(Vt)


def pca_classes(text):
    """(N,) int codes into ``PCA_CLASSES`` for each character of ``text``."""
    from scratchrnn.analysis.features import CHAR_CLASSES, char_class

    mapping = np.array([PCA_CLASSES.index(name) if name in PCA_CLASSES else PCA_CLASSES.index("other")
                        for name in CHAR_CLASSES], dtype=np.int64)
    return mapping[char_class(text)]
