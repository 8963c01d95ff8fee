"""The saturation section: how often each gate is below 0.1 or above 0.9 (the paper's Fig. 3)."""
from __future__ import annotations

from scratchrnn.analysis import activations as act_mod
from scratchrnn.analysis import plots
from scratchrnn.analysis.html_report import Image, Section, Table


def saturation_section(ctx):
    sat = act_mod.gate_saturation(ctx.acts)
    expl = ("For every unit and every sigmoid gate, the fraction of the characters of the whole analysed "
            "text at which the gate is below 0.1 (left-saturated) and above 0.9 (right-saturated), as in "
            "the paper's Figure 3. Each dot is one unit, coloured by layer; a unit on the dashed diagonal "
            "is saturated all the time. Forget gates that sit near the top-left are integrators that "
            "remember for a long time; units near the origin are gates that respond to the input.")
    if not sat:
        return Section("saturation", "Gate saturation",
                       expl + " A vanilla RNN has no gates, so there is nothing to show.",
                       [])
    path = plots.gate_saturation_scatter(sat, ctx.png("gate_saturation.png"))
    rows = act_mod.saturation_summary(sat)
    ctx.summary["saturation"] = rows
    return Section("saturation", "Gate saturation", expl,
                   [Image(path, f"gate saturation over {ctx.acts.num_steps:,} characters"),
                    Table(rows, caption="per gate and layer")])
