"""docs/testing.md's ten-line pytest file, run as written against a user's NumPy LSTM step,
and run again against a wrong one (i and f blocks exchanged), which must fail with the table."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MY_LSTM = '''
import numpy as np

def _sig(a):
    return 1 / (1 + np.exp(-a))

def lstm_step(p, x, state):
    h, c = state
    a = x @ p["weight_ih_l0"].T + p["bias_ih_l0"] + h @ p["weight_hh_l0"].T + p["bias_hh_l0"]
    i, f, g, o = np.split(a, 4, axis=1)
    c = _sig(f) * c + _sig(i) * np.tanh(g)
    return _sig(o) * np.tanh(c), c

def lstm_step_backward(p, x, state, dstate):
    h, c = state
    dh, dc = dstate
    a = x @ p["weight_ih_l0"].T + p["bias_ih_l0"] + h @ p["weight_hh_l0"].T + p["bias_hh_l0"]
    i, f, g, o = np.split(a, 4, axis=1)
    i, f, g, o = _sig(i), _sig(f), np.tanh(g), _sig(o)
    c_new = f * c + i * g
    t = np.tanh(c_new)
    dc = dc + dh * o * (1 - t ** 2)
    da = np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g ** 2),
                         dh * t * o * (1 - o)], axis=1)
    BLOCKS
    return {"weight_ih_l0": da.T @ x, "weight_hh_l0": da.T @ h, "bias_ih_l0": da.sum(0),
            "bias_hh_l0": da.sum(0), "x": da @ p["weight_ih_l0"], "h": da @ p["weight_hh_l0"],
            "c": dc * f}
'''


def _run(tmp_path, blocks, shrink=True):
    code = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "testing.md").read_text(),
                     re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    (tmp_path / "test_mine.py").write_text(code)
    (tmp_path / "my_lstm.py").write_text(MY_LSTM.replace("BLOCKS", blocks))
    phases = "" if shrink else ", phases=[Phase.explicit, Phase.reuse, Phase.generate]"
    (tmp_path / "conftest.py").write_text(      # a quick profile, as the suite's own "ci" one
        "from hypothesis import Phase, settings\n"
        "settings.register_profile('quick', max_examples=15, derandomize=True, deadline=None"
        f"{phases})\n"
        "settings.load_profile('quick')\n")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "test_mine.py"], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                               "HYPOTHESIS_PROFILE": "default"}, timeout=300)


def test_the_documented_file_passes_a_right_step(tmp_path):
    result = _run(tmp_path, "pass")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_documented_file_fails_a_wrong_step_with_the_table(tmp_path):
    swap = "H = h.shape[1]; da = np.concatenate([da[:, H:2 * H], da[:, :H], da[:, 2 * H:]], 1)"
    result = _run(tmp_path, swap, shrink=False)      # the table, not the smallest example
    assert result.returncode == 1
    assert "lstm step backward (torch layout) (tolerance 1e-06): FAILED" in result.stdout
    assert re.search(r"weight_ih_l0\[f\]\s+\S+\s+\S+\s+FAIL", result.stdout)
    assert re.search(r"weight_ih_l0\[g\]\s+\S+\s+\S+\s+pass", result.stdout)
