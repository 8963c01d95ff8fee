"""The harness that runs the suite on a GPU tells the truth about it.

- ``SCRATCHRNN_BACKEND=cupy`` demands the GPU: then every GPU-only test (``needs_cupy``
  marker, tests/conftest.py) and every CuPy run of a ``backend`` test *fails* where CuPy
  cannot run, instead of skipping: a run meant to test the GPU cannot pass by skipping it.
  Without the demand they are skipped with the reason. Shown by running pytest in a
  subprocess in which ``import cupy`` fails (a shadow ``cupy`` package first on the path),
  so the check holds on a machine with a GPU too.
- No test file skips a GPU-only test by hand (a module-level ``skipif`` on
  ``cupy_unavailable_reason``), which would hide it from that demand.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# one GPU-only test of each kind: a marked test, and the CuPy run of a `backend` test
MARKED = "tests/lm/test_checkpoint.py::test_cupy_arrays_are_saved_from_the_host"
FIXTURE = "tests/core/test_backend.py::test_dtype_helper[cupy]"


def _outcomes(tmp_path, backend_env, *node_ids):
    """Run ``node_ids`` in a fresh pytest where CuPy cannot be imported; {test name: outcome}."""
    shadow = tmp_path / "shadow"
    (shadow / "cupy").mkdir(parents=True, exist_ok=True)
    (shadow / "cupy" / "__init__.py").write_text('raise ImportError("no CuPy in this test")\n')
    env = {k: v for k, v in os.environ.items() if k != "SCRATCHRNN_BACKEND"}
    env["PYTHONPATH"] = os.pathsep.join([str(shadow), str(ROOT)])
    if backend_env is not None:
        env["SCRATCHRNN_BACKEND"] = backend_env
    junit = tmp_path / f"junit-{backend_env}.xml"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                          "-p", "no:randomly", f"--junitxml={junit}", *node_ids],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        kinds = [(child.tag, child.get("message", "")) for child in case
                 if child.tag in ("error", "failure", "skipped")]
        outcomes[case.get("name")] = kinds[0] if kinds else ("passed", "")
    return run, outcomes


def test_gpu_only_tests_fail_without_cupy_when_cupy_is_demanded(tmp_path):
    run, outcomes = _outcomes(tmp_path, "cupy", MARKED, FIXTURE)
    assert run.returncode == 1, run.stdout[-2000:]
    assert {name: kind for name, (kind, _) in outcomes.items()} == {
        "test_cupy_arrays_are_saved_from_the_host": "error", "test_dtype_helper[cupy]": "error"}, outcomes
    for _, message in outcomes.values():
        assert "SCRATCHRNN_BACKEND=cupy but CuPy is not installed" in message, message


def test_gpu_only_tests_skip_with_the_reason_when_nothing_is_demanded(tmp_path):
    run, outcomes = _outcomes(tmp_path, None, MARKED, FIXTURE)
    assert run.returncode == 0, run.stdout[-2000:]
    assert {kind for kind, _ in outcomes.values()} == {"skipped"}, outcomes
    for _, message in outcomes.values():
        assert "CuPy is not installed" in message, message


def test_no_test_skips_a_gpu_test_by_hand():
    """A GPU-only test says so with the ``needs_cupy`` marker (or takes ``backend``), never
    with its own skip on ``cupy_unavailable_reason``, which SCRATCHRNN_BACKEND=cupy cannot
    turn into a failure. (Skips when a GPU *is* present -- tests of the no-GPU message -- are fine.)"""
    hand_made = re.compile(r"(cupy_unavailable_reason\(\)|CUPY_REASON|NO_GPU)\s+is\s+not\s+None")
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.name == "conftest.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if hand_made.search(line) and ("skip" in line or "if " in line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_marker_is_used_by_the_gpu_only_tests():
    marked = [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "tests").rglob("test_*.py"))
              if "@pytest.mark.needs_cupy" in p.read_text()]
    assert {"tests/engines/test_engines.py", "tests/engines/test_device_step.py",
            "tests/lm/test_checkpoint.py"} <= set(marked)


if __name__ == "__main__":          # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_the_gpu_session_script_rehearses_its_suite_on_the_cpu(tmp_path):
    """``REHEARSE=1 bash benchmarks/gpu_session.sh suite TESTS``: versions name the stand-in,
    the suite runs with SCRATCHRNN_BACKEND=cupy on it (junit back), and a missing pytest-xdist
    or pytest-timeout is said in one line each instead of failing on ``-n``/``--timeout``."""
    env = dict(os.environ, OUT=str(tmp_path / "out"), REHEARSE="1", PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    env.pop("SCRATCHRNN_BACKEND", None)
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_session.sh"), "suite",
                          "tests/core/test_backend.py::test_asarray_asnumpy_round_trip"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    out = tmp_path / "out"
    assert "NumPy stand-in for CuPy (no GPU)" in (out / "versions.txt").read_text()
    suite = ET.parse(out / "junit.xml").getroot()
    cases = list(suite.iter("testcase"))
    assert sorted(case.get("name") for case in cases) == [      # the CuPy runs too, on the stand-in
        f"test_asarray_asnumpy_round_trip[{b}-{d}]" for b in ("cupy", "numpy") for d in ("float32", "float64")]
    assert all(not list(case) for case in cases)                    # every one ran and passed
    assert "pytest exit status 0" in (out / "pytest.log").read_text()
    for plugin, module in (("pytest-xdist", "xdist"), ("pytest-timeout", "pytest_timeout")):
        missing = subprocess.run([sys.executable, "-c", f"import {module}"], env=env,
                                 capture_output=True).returncode != 0           # where the script looks
        assert (f"{plugin} is missing" in run.stdout) == missing, run.stdout[:2000]
