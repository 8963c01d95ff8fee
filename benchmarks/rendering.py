"""Rendering benchmark results: the markdown tables (RESULTS.md), the log-log scaling
plots, and re-rendering both from a saved JSON record.
"""
from __future__ import annotations

import json
from pathlib import Path

from .measuring import evaluate_targets, size_name


def _fmt(v, spec=".2f", none="—"):
    return none if v is None else format(v, spec)


def markdown(record):
    lines = []
    m = record["machine"]
    lines.append(f"# scratchrnn benchmark — {record['date']}")
    lines.append("")
    lines.append(f"Command: `{record['command']}`  ")
    lines.append(f"Machine: {m['cpu']} ({m['cores']} cores), {m['platform']}; threads {record['threads']}; "
                 f"niceness {record.get('niceness') or 0}; "
                 f"load average before/after {m['loadavg_before']} / {m['loadavg_after']}  ")
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in record["versions"].items()) + "  ")
    if record.get("gpu"):
        lines.append("GPU: " + ", ".join(f"{k} {v}" for k, v in record["gpu"].items()) +
                     f"; TF32 {'on' if record.get('tf32') else 'off'} (both sides alike)  ")
    lines.append("GEMM peak (2048³ float32): " + ", ".join(
        f"{k} {v:.0f} GFLOP/s" for k, v in record["gemm_peak_gflops"].items()) + "  ")
    if record["unavailable"]:
        lines.append("Not measured here: " + "; ".join(
            f"{k}: {v}" for k, v in record["unavailable"].items()) + "  ")
    lines.append(f"Rounds per case: {record['rounds']} (alternating, each implementation in its own "
                 "process); times are medians, [min–max] over rounds; float32; one layer. "
                 "'other load' = CPU time used by processes outside the benchmark while the case ran, "
                 "as a share of all cores: above ~10% the times are disturbed.")
    lines.append("")
    lines.append("## Size grid")
    lines.append("")
    lines.append("| cell | size | impl | fwd ms | bwd ms | fwd+bwd ms [min–max] | train ms | tokens/s "
                 "| GFLOP/s | % peak | peak MB | ×torch | other load |")
    lines.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in record["grid"]:
        c = r["case"]
        for name, rr in r["results"].items():
            mem = rr.get("memory") or {}
            pb = mem.get("peak_bytes")
            fb = rr["fwdbwd"]
            lines.append(
                f"| {c['cell']} | {size_name(c['T'], c['B'], c['I'], c['H'])} | {name} "
                f"| {rr['fwd']['median_ms']:.2f} | {rr['bwd']['median_ms']:.2f} "
                f"| {fb['median_ms']:.2f} [{fb['min_ms']:.2f}–{fb['max_ms']:.2f}] "
                f"| {rr['train']['median_ms']:.2f} | {rr['tokens_per_s']:,.0f} | {rr['gflops']:.1f} "
                f"| {_fmt(None if rr['frac_peak'] is None else 100 * rr['frac_peak'], '.0f')} "
                f"| {_fmt(None if pb is None else pb / 2**20, '.1f')} "
                f"| {_fmt(rr['ratio_torch'])} "
                f"| {_fmt(None if rr.get('foreign_load') is None else 100 * rr['foreign_load'], '.0f')}% |")
    bds = [(r["case"], name, rr["breakdown"]) for r in record["grid"]
           for name, rr in r["results"].items() if "breakdown" in rr]
    if bds:
        lines.append("")
        lines.append("## Where fwd+bwd time goes (scratchrnn)")
        lines.append("")
        lines.append("GEMM = the layer's GEMMs replayed alone with the same shapes; alloc = estimated "
                     "first-touch cost of freshly allocated buffers; rest = elementwise gate math, "
                     "Python and call overhead.")
        lines.append("")
        lines.append("| cell | size | impl | total ms | GEMM | alloc | rest |")
        lines.append("|---|---|---|---:|---:|---:|---:|")
        for c, name, b in bds:
            lines.append(f"| {c['cell']} | {size_name(c['T'], c['B'], c['I'], c['H'])} | {name} "
                         f"| {1e3 * b['total_s']:.2f} | {100 * b['gemm_frac']:.0f}% "
                         f"| {100 * b['alloc_frac']:.0f}% | {100 * b['rest_frac']:.0f}% |")
    mems = [(r["case"], name, rr["memory"]) for r in record["grid"]
            for name, rr in r["results"].items()
            if name.startswith("scratch") and (rr.get("memory") or {}).get("formula_bytes")]
    if mems:
        lines.append("")
        lines.append("## Memory against the documented cache formula")
        lines.append("")
        lines.append("cache = bytes a forward leaves allocated (+ the inputs, which the formula counts); "
                     "peak = highest allocation during fwd+bwd+update (+ inputs).")
        lines.append("")
        lines.append("| cell | size | impl | formula MB | cache MB | cache/formula | peak MB | peak/formula |")
        lines.append("|---|---|---|---:|---:|---:|---:|---:|")
        for c, name, mem in mems:
            lines.append(f"| {c['cell']} | {size_name(c['T'], c['B'], c['I'], c['H'])} | {name} "
                         f"| {mem['formula_bytes'] / 2**20:.1f} | {mem['cache_bytes'] / 2**20:.1f} "
                         f"| {mem['cache_vs_formula']:.2f} | {mem['peak_bytes'] / 2**20:.1f} "
                         f"| {mem['peak_vs_formula']:.2f} |")
    if record.get("sweeps"):
        lines.append("")
        lines.append("## Scaling sweeps (fwd+bwd ms, fitted exponent of time ~ size^k)")
        lines.append("")
        for var, sweep in record["sweeps"].items():
            lines.append(f"- **{var}** ({', '.join(str(v) for v in sweep['values'])}): " + "; ".join(
                f"{cell} {impl} k={fit['exponent']:.2f}" for cell, per in sweep["fits"].items()
                for impl, fit in per.items()))
    lines.append("")
    lines.append("## Targets")
    lines.append("")
    lines.append("Ratios are scratchrnn (fast path) / other, except 'naive / scratchrnn'. Where a target "
                 "is missed, 'by' is value / threshold and the last column is scratchrnn's fwd+bwd time "
                 "split into GEMM / allocation / rest (elementwise + Python) for that case.")
    lines.append("")
    lines.append("| target | value | threshold | met | by | GEMM / alloc / rest |")
    lines.append("|---|---:|---:|---|---:|---|")
    for t in record["targets"]:
        met = "not measured" if t["met"] is None else ("yes" if t["met"] else "**no**")
        w = t.get("where_time_goes")
        split = f"{100 * w['gemm']:.0f}% / {100 * w['alloc']:.0f}% / {100 * w['rest']:.0f}%" if w else ""
        by = _fmt(t.get("by"), ".2f") if t["met"] is False else ""
        lines.append(f"| {t['target']} | {_fmt(t['value'], '.3f')} | {t['threshold']} | {met} "
                     f"| {by} | {split} |")
    return "\n".join(lines) + "\n"


def plot_sweeps(record, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = []
    for var, sweep in record["sweeps"].items():
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        for cell, per in sweep["curves"].items():
            for impl, ys in per.items():
                xs = sweep["values"][:len(ys)]
                fit = sweep["fits"][cell][impl]
                line, = ax.plot(xs, ys, "o-" if impl.startswith("scratch") else "s--",
                                label=f"{cell} {impl} (k={fit['exponent']:.2f})")
                ax.plot(xs, [fit["scale"] * x ** fit["exponent"] for x in xs], ":",
                        color=line.get_color(), linewidth=0.8)
        base = ", ".join(f"{k}={v}" for k, v in sweep["base"].items())
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(var)
        ax.set_ylabel("fwd+bwd time (ms)")
        ax.set_title(f"scaling in {var} ({base}); dotted: fitted power law")
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        p = Path(out) / f"scaling_{var}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(str(p))
    return paths


def write_tables_and_plots(record, out, tag):
    """Write ``out``/RESULTS.md (RESULTS-<tag>.md unless tag is cpu or gpu) and the scaling
    plots of ``record``; returns the markdown."""
    out = Path(out)
    md = markdown(record)
    (out / ("RESULTS.md" if tag in ("cpu", "gpu") else f"RESULTS-{tag}.md")).write_text(md)
    if record.get("sweeps"):
        plot_sweeps(record, out)
    return md


def rerender(path, out=None):
    """Recompute targets and rewrite RESULTS.md / plots from a saved JSON record."""
    path = Path(path)
    record = json.loads(path.read_text())
    record["targets"] = evaluate_targets(record["grid"])
    out = Path(out) if out else path.parent
    tag = path.stem
    path.write_text(json.dumps(record, indent=1))
    md = write_tables_and_plots(record, out, tag)
    print(md)
    return record
