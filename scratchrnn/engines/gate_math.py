"""The gate math of the two compiled engines, C and CUDA, from one source.

The elementwise part of an LSTM or GRU step, forward and backward, is written
here once for both compiled engines, as C statements for one element (b, j) of the
(B, H) state. (The book's copy is ``cells/*.py``, NumPy's fast one ``numpy_fast.py``;
docs/architecture.md lists every copy and the test that pins it.) From these
statements ``c_source()`` assembles the C helper of the CPU engine
(``cpu_compiled.py``: a loop over b and j) and ``cuda_kernel()`` the bodies of the
CuPy ElementwiseKernels (``cupy_fused.py``: one thread per element). The math is
that of ``cells/lstm.py`` and ``cells/gru.py`` (docs/derivations.md §3 "LSTM" and
§4 "GRU"), with derivatives taken from cached outputs.

Notation inside a body:
    ``name[k]``    element (b, gate k, j) of the array ``name``; an array of width 1
                   is a (B, H) state, of width G a (B, G*H) gate block, and a bias
                   (G*H,) has no batch row. A read is cast to ``C``.
    ``C``          the type the math runs in (float or double)
    ``TANH(x)``, ``SIGMOID(x)``   σ(x) = ½·tanh(½x) + ½ (one tanh for every gate)
Locals must not be named ``i`` (CuPy's element index). The gate buffer ``gates`` is read and
written in place by the forward kernels: it holds x W_x + biases on entry and the
post-activation gates on exit.
"""
from __future__ import annotations

import re
from typing import NamedTuple


class ElementwiseOp(NamedTuple):
    """One kernel: its arrays (name -> width in blocks of H; ``BIAS`` marks a bias) and body."""
    name: str
    inputs: tuple       # names of the arrays only read
    outputs: tuple      # names of the arrays written (``gates`` may also be read)
    widths: dict
    body: str


BIAS = "bias"

LSTM_FORWARD = ElementwiseOp(
    "lstm_fwd", ("ah", "c_prev"), ("gates", "c", "tanh_c", "h"),
    {"ah": 4, "c_prev": 1, "gates": 4, "c": 1, "tanh_c": 1, "h": 1}, """
    C ig = SIGMOID(gates[0] + ah[0]);             // i = σ(a_i), a = x W_x + b + h W_h
    C fg = SIGMOID(gates[1] + ah[1]);             // f = σ(a_f)
    C gg = TANH(gates[2] + ah[2]);                // g = tanh(a_g)
    C og = SIGMOID(gates[3] + ah[3]);             // o = σ(a_o)
    C c_new = fg * c_prev[0] + ig * gg;           // c' = f c + i g
    C t = TANH(c_new);
    gates[0] = ig; gates[1] = fg; gates[2] = gg; gates[3] = og;
    c[0] = c_new;
    tanh_c[0] = t;
    h[0] = og * t;                                // h' = o tanh(c')
""")

LSTM_BACKWARD = ElementwiseOp(
    "lstm_bwd", ("dy", "dh_next", "dc_next", "gates", "c_prev", "tanh_c"), ("da", "dc_prev"),
    {"dy": 1, "dh_next": 1, "dc_next": 1, "gates": 4, "c_prev": 1, "tanh_c": 1, "da": 4,
     "dc_prev": 1}, """
    C ig = gates[0], fg = gates[1], gg = gates[2], og = gates[3], t = tanh_c[0];
    C dh = dy[0] + dh_next[0];                    // the output's and step t+1's gradient
    C dc = dc_next[0] + dh * og * ((C)1 - t * t); // undo h = o tanh(c): the c path
    da[0] = dc * gg * ig * ((C)1 - ig);           // undo c = f c_prev + i g, i = σ(a_i)
    da[1] = dc * c_prev[0] * fg * ((C)1 - fg);    // undo c = f c_prev + .., f = σ(a_f)
    da[2] = dc * ig * ((C)1 - gg * gg);           // undo c = .. + i g, g = tanh(a_g)
    da[3] = dh * t * og * ((C)1 - og);            // undo h = o tanh(c): the o path, o = σ(a_o)
    dc_prev[0] = dc * fg;                         // undo c = f c_prev
""")

GRU_FORWARD = ElementwiseOp(
    "gru_fwd", ("ah", "b_h", "h_prev"), ("gates", "hn", "h"),
    {"ah": 3, "b_h": BIAS, "h_prev": 1, "gates": 3, "hn": 1, "h": 1}, """
    C r = SIGMOID(gates[0] + (ah[0] + b_h[0]));   // r = σ(a_x,r + a_h,r)
    C z = SIGMOID(gates[1] + (ah[1] + b_h[1]));   // z = σ(a_x,z + a_h,z)
    C a_hn = ah[2] + b_h[2];                      // a_h,n = h W_hn + b_hn
    C n = TANH(gates[2] + r * a_hn);              // n = tanh(a_x,n + r a_h,n)
    gates[0] = r; gates[1] = z; gates[2] = n;
    hn[0] = a_hn;
    h[0] = n + z * (h_prev[0] - n);               // h' = (1 - z) n + z h
""")

GRU_BACKWARD = ElementwiseOp(
    "gru_bwd", ("dy", "dh_gemm", "dh_z", "gates", "hn", "h_prev"), ("dax", "dah", "dh_z_out"),
    {"dy": 1, "dh_gemm": 1, "dh_z": 1, "gates": 3, "hn": 1, "h_prev": 1, "dax": 3, "dah": 3,
     "dh_z_out": 1}, """
    C r = gates[0], z = gates[1], n = gates[2];
    C dh = dy[0] + dh_gemm[0] + dh_z[0];          // all paths into h': output, W_h, z h
    C dan = dh * ((C)1 - z) * ((C)1 - n * n);     // undo h' = (1-z) n + z h, n = tanh(.)
    C dar = dan * hn[0] * r * ((C)1 - r);         // undo r = σ(.) through r a_h,n
    C daz = dh * (h_prev[0] - n) * z * ((C)1 - z);  // undo h' = .. + z h, z = σ(.)
    dax[0] = dar; dax[1] = daz; dax[2] = dan;
    dah[0] = dar; dah[1] = daz; dah[2] = dan * r; // a_h,n is scaled by r
    dh_z_out[0] = dh * z;                         // the z h_prev path, for step t-1
""")

OPS = {op.name: op for op in (LSTM_FORWARD, LSTM_BACKWARD, GRU_FORWARD, GRU_BACKWARD)}

SIGMOID_MACRO = "#define SIGMOID(x) ((C)0.5 * TANH((C)0.5 * (x)) + (C)0.5)"


def expand(op):
    """The body with every ``name[k]`` replaced by its index in terms of b, j and H."""
    def index(match):
        name, k = match.group(1), int(match.group(2))
        width = op.widths[name]
        where = (f"{k} * H + j" if width == BIAS else "b * H + j" if width == 1
                 else f"(b * {width} + {k}) * H + j")
        is_store = re.match(r"\s*=(?!=)", match.string[match.end():]) is not None
        return f"{name}[{where}]" if is_store else f"((C){name}[{where}])"
    names = "|".join(sorted(op.widths, key=len, reverse=True))
    return re.sub(rf"\b({names})\[(\d)\]", index, op.body)


def c_source():
    """The C helper: for each op and for float (suffix f32) and double (f64), a function
    ``<op>_<suffix>(long B, long H, inputs..., outputs...)`` looping over b and j."""
    parts = ["#include <math.h>", "#include <stddef.h>", SIGMOID_MACRO]
    for ctype, suffix, tanh in (("float", "f32", "tanhf"), ("double", "f64", "tanh")):
        parts.append(f"#define TANH {tanh}")
        for op in OPS.values():
            args = [f"const {ctype} *restrict {n}" for n in op.inputs]
            args += [f"{ctype} *restrict {n}" for n in op.outputs]
            parts.append(f"void {op.name}_{suffix}(long B, long H, {', '.join(args)}) {{\n"
                         f"  typedef {ctype} C;\n"
                         f"  for (long b = 0; b < B; ++b) {{\n"
                         f"    for (long j = 0; j < H; ++j) {{{expand(op)}    }}\n"
                         f"  }}\n}}")
        parts.append("#undef TANH")
    return "\n".join(parts) + "\n"


def cuda_kernel(op, ctype):
    """(in_params, out_params, operation, preamble) of ``cupy.ElementwiseKernel`` for ``op``,
    math in ``ctype`` ("float" or "double"), one thread per element i = b*H + j."""
    in_params = ", ".join([f"raw T {n}" for n in op.inputs] + ["int32 H"])
    out_params = ", ".join(f"raw T {n}" for n in op.outputs)
    operation = "const ptrdiff_t b = i / H, j = i % H;" + expand(op)
    preamble = f"typedef {ctype} C;\n#define TANH tanh\n{SIGMOID_MACRO}\n"
    return in_params, out_params, operation, preamble
