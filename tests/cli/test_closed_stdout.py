"""``scratchrnn COMMAND >&-``: with standard output closed, every command says so in one
sentence on stderr and exits with status 2 before doing any work (no traceback, nothing
written); with stderr closed too it still exits 2 quietly."""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.bad_input("closed streams")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(args, cwd, close=(1,)):
    env = dict(os.environ, PYTHONPATH=ROOT, SCRATCHRNN_BACKEND="numpy", MPLBACKEND="Agg")

    def close_fds():
        for fd in close:
            os.close(fd)
    return subprocess.run([sys.executable, "-m", "scratchrnn.cli", *args], cwd=cwd, env=env,
                          stdout=None if 1 in close else subprocess.PIPE, stderr=subprocess.PIPE,
                          preexec_fn=close_fds, text=True, timeout=120)


COMMANDS = {
    "train": ["train", "--corpus", "python-docs", "--max-steps", "3", "--out", "run"],
    "sample": ["sample", "ckpt.npz", "--length", "5"],
    "eval": ["eval", "ckpt.npz"],
    "analyze": ["analyze", "ckpt.npz", "--out", "report"],
    "gradcheck": ["gradcheck", "--cells", "rnn", "--layers", "1"],
    "grid": ["grid", "--cells", "rnn", "--layers", "1", "--sizes", "8", "--budget-steps", "2",
             "--out", "grid"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_closed_stdout_is_one_sentence_and_exit_2(command, tmp_path):
    proc = _run(COMMANDS[command], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"scratchrnn {command}: error: standard output is closed (the command "
                                   f"was started with >&-); give it somewhere to write, e.g. > out.txt "
                                   f"or > /dev/null.")
    assert os.listdir(tmp_path) == []            # refused before any work: nothing written


def test_closed_stdout_and_stderr_exit_2_without_writing():
    proc = _run(COMMANDS["gradcheck"], ROOT, close=(1, 2))
    assert proc.returncode == 2
