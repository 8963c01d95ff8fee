"""What the benchmark measures and how the numbers are judged: the cases (cells and
sizes), the GEMM FLOP count, the derived numbers of a case (tokens/s, GFLOP/s, share of
the GEMM peak, ratios to PyTorch, memory against the cells' cache formula), the power-law
fit of the scaling sweeps and the performance targets (docs/performance.md).
"""
from __future__ import annotations

import math

CELLS = ("rnn", "gru", "lstm")
GRID = [(64, 32, 64, 128), (64, 32, 256, 256), (50, 1, 65, 100), (100, 64, 512, 512),
        (100, 128, 1024, 1024)]
SWEEP_BASE = {"T": 64, "B": 32, "H": 256}            # I = H in the H sweep, else I = 256
SWEEPS = {"T": [16, 32, 64, 128, 256], "B": [1, 4, 16, 64, 128], "H": [64, 128, 256, 512]}
QUICK_GRID = [(8, 4, 8, 16), (5, 1, 7, 9)]
QUICK_SWEEPS = {"T": [4, 8], "B": [1, 4], "H": [8, 16]}
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def gemm_flops(cell, T, B, I, H):
    """GEMM FLOPs of one forward+backward: forward 2TB(I+H)GH; backward twice that
    (dW_x, dW_h; dx, dh_prev). Elementwise work is not counted."""
    return 6.0 * T * B * (I + H) * GATES[cell] * H


def size_name(T, B, I, H):
    return f"T{T} B{B} I{I} H{H}"


def enrich(case, res, peaks):
    """Derived numbers: tokens/s, GFLOP/s, % of peak, ratios, memory vs formula."""
    from scratchrnn.book.cells import CELLS as CELL_MODULES
    T, B, I, H = (case[k] for k in "TBIH")
    flops = gemm_flops(case["cell"], T, B, I, H)
    formula = CELL_MODULES[case["cell"]].cache_elements(T, B, I, H) * 4
    xs_bytes = T * B * I * 4
    torch_cpu = res.get("torch-cpu", {}).get("fwdbwd", {}).get("median_ms")
    torch_gpu = res.get("torch-cuda", {}).get("fwdbwd", {}).get("median_ms")
    numpy_ms = res.get("scratch-numpy", {}).get("fwdbwd", {}).get("median_ms")
    for name, rr in res.items():
        ms = rr["fwdbwd"]["median_ms"]
        gpu = name in ("scratch-cupy", "torch-cuda")
        peak = peaks.get("gpu" if gpu else "cpu")
        rr["tokens_per_s"] = T * B / (rr["train"]["median_ms"] / 1e3)
        rr["gflops"] = flops / (ms / 1e3) / 1e9
        rr["frac_peak"] = rr["gflops"] / peak if peak else None
        ref = torch_gpu if gpu else torch_cpu
        rr["ratio_torch"] = ms / ref if ref else None
        if name == "scratch-cupy" and numpy_ms:
            rr["speedup_vs_numpy"] = numpy_ms / ms
        if name == "naive" and numpy_ms:
            rr["slowdown_vs_scratch"] = ms / numpy_ms
        mem = rr.get("memory") or {}
        if mem.get("peak_bytes") is not None and name.startswith("scratch"):
            mem["formula_bytes"] = formula
            mem["cache_vs_formula"] = (mem["cache_bytes"] + xs_bytes) / formula
            mem["peak_vs_formula"] = (mem["peak_bytes"] + xs_bytes) / formula
    return res


def evaluate_targets(grid_results):
    """The performance targets, each with value, threshold and whether it is met."""
    out = []

    def find(cell, size):
        for r in grid_results:
            c = r["case"]
            if c["cell"] == cell and (c["T"], c["B"], c["I"], c["H"]) == size:
                return r["results"]
        return None

    runs = {(r["case"]["cell"], r["case"]["T"], r["case"]["B"], r["case"]["I"], r["case"]["H"])
            for r in grid_results}
    sizes_run = {k[1:] for k in runs}

    def add(name, value, threshold, sense="<=", size=None):
        cell = name.split()[0]
        if size is not None and (size not in sizes_run or (
                cell in CELLS and (cell, *size) not in runs)):
            return                                   # that case was not part of this run
        if value is None:
            out.append({"target": name, "value": None, "threshold": threshold, "met": None})
            return
        met = value <= threshold if sense == "<=" else value >= threshold
        row = {"target": name, "value": round(value, 3), "threshold": threshold, "met": met,
               "by": round(value / threshold, 3)}
        cell = name.split()[0]
        res = find(cell, size) if size is not None and cell in CELLS else None
        bd = (res or {}).get("scratch-numpy", {}).get("breakdown")
        if not met and bd:                           # where scratchrnn's fwd+bwd time goes
            row["where_time_goes"] = {k: round(bd[k + "_frac"], 3) for k in ("gemm", "alloc", "rest")}
        out.append(row)

    def ratio(res, name="scratch-numpy", key="ratio_torch"):
        return None if res is None or name not in res else res[name].get(key)

    for cell in CELLS:
        for size in ((100, 64, 512, 512), (100, 128, 1024, 1024)):
            add(f"{cell} fwd+bwd / torch CPU at {size_name(*size)}", ratio(find(cell, size)), 1.0,
                size=size)
        add(f"{cell} fwd+bwd / torch CPU at {size_name(64, 32, 256, 256)}",
            ratio(find(cell, (64, 32, 256, 256))), 1.3 if cell == "lstm" else 0.8,
            size=(64, 32, 256, 256))
        add(f"{cell} fwd+bwd / torch CPU at batch 1 ({size_name(50, 1, 65, 100)})",
            ratio(find(cell, (50, 1, 65, 100))), 0.5, size=(50, 1, 65, 100))
        for size in ((100, 64, 512, 512), (100, 128, 1024, 1024)):
            add(f"{cell} fraction of GEMM peak at {size_name(*size)}",
                ratio(find(cell, size), key="frac_peak"), 0.75, ">=", size=size)
        for size in GRID:
            add(f"{cell} naive / scratchrnn at {size_name(*size)}",
                ratio(find(cell, size), "naive", "slowdown_vs_scratch"), 2.0, ">=", size=size)
        for size in GRID:
            res = find(cell, size)
            mem = None if res is None or "scratch-numpy" not in res else \
                res["scratch-numpy"].get("memory", {}).get("cache_vs_formula")
            add(f"{cell} forward cache / formula at {size_name(*size)}", mem, 1.2, size=size)
    add("lstm CuPy / cuDNN fwd+bwd at T100 B64 I512 H512",
        ratio(find("lstm", (100, 64, 512, 512)), "scratch-cupy"), 1.5, size=(100, 64, 512, 512))
    add("lstm CuPy speed-up over NumPy at T100 B128 I1024 H1024",
        ratio(find("lstm", (100, 128, 1024, 1024)), "scratch-cupy", "speedup_vs_numpy"), 20.0, ">=",
        size=(100, 128, 1024, 1024))
    return out


def fit_exponent(xs, ys):
    """(k, scale) of the least-squares fit of log y = k log x + log scale: y ~ scale * x^k."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    k = sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx if sxx else 0.0
    return k, math.exp(my - k * mx)
