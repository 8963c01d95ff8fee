"""``scratchrnn grid --scheduler ADDRESS``: an address that is not one, a port that does not
answer, and a port that answers but is no Dask scheduler each end in one sentence, exit 2,
within --connect-timeout (plus a margin), with no traceback (not even from Client.__del__)."""
import os
import socket
import subprocess
import threading
import time

import pytest

from grid_cli import TINY, env, grid_command

pytest.importorskip("distributed")
pytestmark = pytest.mark.bad_input("dask addresses")

HERE = os.path.dirname(os.path.abspath(__file__))
ARGS = [*TINY, "--cells", "rnn", "--layers", "1", "--sizes", "8", "--budget-steps", "2"]


def _grid(tmp_path, address, timeout=2):
    started = time.monotonic()
    proc = subprocess.run(grid_command(*ARGS, "--out", tmp_path / "g", "--scheduler", address,
                                       "--connect-timeout", timeout),
                          cwd=HERE, env=env(), capture_output=True, text=True, timeout=120)
    return proc, time.monotonic() - started


def _one_sentence(proc, *words):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scratchrnn grid: error: "), proc.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("address", ["notaurl", "", "udp://127.0.0.1:8786", "tcp://host:99999",
                                     "tcp://", "http://127.0.0.1:8786"])
def test_what_is_not_an_address_is_refused_before_connecting(tmp_path, address):
    proc, _ = _grid(tmp_path, address)
    _one_sentence(proc, "not a Dask scheduler address")
    assert not (tmp_path / "g").exists()


@pytest.fixture
def silent_port():
    """A TCP port that accepts connections and then says nothing (not a Dask scheduler)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_port_that_answers_but_is_not_dask_gives_up_in_time(tmp_path, silent_port):
    proc, took = _grid(tmp_path, f"tcp://127.0.0.1:{silent_port}", timeout=2)
    _one_sentence(proc, "Cannot reach a Dask scheduler")
    assert took < 60


def test_a_port_that_does_not_answer_is_one_sentence(tmp_path):
    proc, _ = _grid(tmp_path, "tcp://127.0.0.1:9", timeout=1)
    _one_sentence(proc, "Cannot reach a Dask scheduler")
