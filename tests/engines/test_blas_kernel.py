"""blas_kernel: which OpenBLAS kernels run, and the advice when the CPU could run faster ones."""
import os
import platform
import subprocess
import sys

import pytest

from scratchrnn.engines import blas_kernel

AVX512 = set(blas_kernel.AVX512_NEEDED) | {"avx2", "fma"}


def test_advice_names_the_variable_that_forces_avx2_kernels():
    text = blas_kernel.blas_advice("Haswell", AVX512, {"OPENBLAS_CORETYPE": "Haswell"})
    assert "Haswell kernels" in text and "OPENBLAS_CORETYPE=Haswell is set: unset it" in text


def test_advice_says_how_to_choose_the_kernels_when_nothing_forces_them():
    text = blas_kernel.blas_advice("Haswell", AVX512, {})
    assert "set OPENBLAS_CORETYPE=SkylakeX before Python starts" in text


@pytest.mark.parametrize("kernel, flags", [
    ("SkylakeX", AVX512),                               # already AVX-512
    ("Cooperlake", AVX512),
    ("Haswell", {"avx2", "fma", "avx512f"}),            # the CPU lacks part of AVX-512
    ("Haswell", set()),                                 # no flags known (not Linux)
])
def test_no_advice_where_nothing_faster_exists(kernel, flags):
    assert blas_kernel.blas_advice(kernel, flags, {"OPENBLAS_CORETYPE": "Haswell"}) is None


def test_no_advice_without_openblas(monkeypatch):
    monkeypatch.setattr(blas_kernel, "openblas_kernel", lambda: None)
    assert blas_kernel.blas_advice(None, AVX512, {}) is None


def test_cpu_flags_reads_the_first_cpu(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx2 avx512f\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    assert blas_kernel.cpu_flags(str(info)) == {"fpu", "avx2", "avx512f"}
    assert blas_kernel.cpu_flags(str(tmp_path / "missing")) == set()


def _kernel_in_fresh_python(coretype):
    env = dict(os.environ, OPENBLAS_CORETYPE=coretype)
    out = subprocess.run([sys.executable, "-c", "from scratchrnn.engines.blas_kernel import openblas_kernel, "
                          "describe; print(openblas_kernel()); print(describe())"],
                         env=env, capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.splitlines()


def test_openblas_kernel_reports_what_the_variable_chose():
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the Haswell kernel set exists in x86-64 builds of OpenBLAS only")
    if blas_kernel.openblas_kernel() is None:
        pytest.skip("NumPy's BLAS here is not an OpenBLAS that reports its kernels")
    kernel, described = _kernel_in_fresh_python("Haswell")
    assert kernel == "Haswell"                          # every x86-64 OpenBLAS build has it
    assert "Haswell kernels (OPENBLAS_CORETYPE=Haswell)" in described
