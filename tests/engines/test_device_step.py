"""The GPU training step (``engines.device_step``) equals the book's step and reads nothing back.

- On NumPy, ``DeviceStep`` equals ``train.train_step`` step for step. In float64 it is bit
  for bit, for every cell and optimizer, with the norm clip acting on some steps and not
  on others, element clipping, and a learning-rate change. In float32 it is too, except
  Adam: its bias corrections 1 - beta^t are computed from a float32 ``t`` on the device,
  where the book computes them in float64 from a Python int. After six steps at lr 0.05
  the weights then differ by at most 1e-4.
- On the stand-in for CuPy (tests/emulated_cupy.py), the step runs the package's GPU
  paths (the fused kernels for GRU and LSTM), and inside it no array is read back to the
  host. The book's step, run the same way, is caught reading: the check can fail.
- A whole training run on the stand-in uses the device step for every step, then saves,
  resumes and continues as a run that was never interrupted.

On a real GPU (skipped without one, with the reason), one whole step is captured as a
CUDA graph: the capture refuses any synchronous device-to-host copy.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

import emulated_cupy
import scratchrnn.lm.run as runner
from host import to_host
from scratchrnn.blocks.model import CharLM
from scratchrnn.book.batching import Batch, BatchStream
from scratchrnn.book.optim import make_optimizer
from scratchrnn.book.train import train_step
from scratchrnn.core.backend import get_backend
from scratchrnn.core.errors import TrainingDiverged
from scratchrnn.engines.device_step import DeviceStep
from scratchrnn.lm.run import TrainConfig, Trainer

ADAM_FLOAT32_TOL = 1e-4


def _batches(rng, V, T, B, n, masked=False):
    for k in range(n):
        mask = (rng.random((T, B)) < 0.8) if masked else None
        yield Batch(x=rng.integers(0, V, (T, B)), y=rng.integers(0, V, (T, B)), reset=False,
                    epoch=0, index=k, mask=mask)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "rmsprop", "adam"])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_device_step_equals_the_book_step(cell, optimizer, dtype):
    V, T, B = 11, 4, 3
    book, dev = (CharLM(V, cell, 8, 2, embedding_size=5, dtype=dtype, seed=1) for _ in range(2))
    opt_book, opt_dev = make_optimizer(optimizer, 0.05), make_optimizer(optimizer, 0.05)
    step = DeviceStep(dev, opt_dev)
    s_book, s_dev = book.initial_state(B), dev.initial_state(B)
    exact = dtype == "float64" or optimizer != "adam"
    for k, batch in enumerate(_batches(np.random.default_rng(0), V, T, B, 6, masked=_masked(cell))):
        max_norm = 0.5 if k % 2 else 1e3                   # the clip acts on odd steps only
        loss_book, s_book = train_step(book, opt_book, batch, s_book, grad_clip=max_norm,
                                       clip_value=2.0 if k == 4 else 0.0)
        loss_dev, s_dev = step(batch, s_dev, grad_clip=max_norm, clip_value=2.0 if k == 4 else 0.0)
        if k == 2:
            opt_book.lr = opt_dev.lr = 0.01                # a decay between steps reaches the device
        if exact or k == 0:                                # before the first update, always exact
            assert float(loss_dev) == loss_book, k
    assert opt_dev.t == opt_book.t == 6
    for key in book.params:
        if exact:
            np.testing.assert_array_equal(to_host(dev.params[key]), to_host(book.params[key]), err_msg=key)
        else:
            np.testing.assert_allclose(to_host(dev.params[key]), to_host(book.params[key]), rtol=0,
                                       atol=ADAM_FLOAT32_TOL, err_msg=key)
    for slot, store in opt_book.state.items():
        for key, a in store.items():
            np.testing.assert_allclose(to_host(opt_dev.state[slot][key]), to_host(a),
                                       rtol=0 if exact else 1e-3, atol=0 if exact else ADAM_FLOAT32_TOL)


def _masked(cell):
    """Masked targets (as word-level padding makes) for the GRU, plain ones for the others."""
    return cell == "gru"


def test_device_step_clips_only_when_the_norm_exceeds_the_limit():
    """With a limit far above the norm, the gradients are multiplied by exactly 1."""
    model = CharLM(7, "lstm", 6, 1, dtype="float64", seed=2)
    batch = next(_batches(np.random.default_rng(3), 7, 5, 2, 1))
    reference = CharLM(7, "lstm", 6, 1, dtype="float64", seed=2)
    DeviceStep(model, make_optimizer("sgd", 0.1))(batch, model.initial_state(2), grad_clip=1e9)
    train_step(reference, make_optimizer("sgd", 0.1), batch, reference.initial_state(2))
    for key in model.params:
        np.testing.assert_array_equal(to_host(model.params[key]), to_host(reference.params[key]))


# ------------------------------------------------------------------ on the stand-in for CuPy
@pytest.fixture
def fake_gpu(tmp_path):
    """(stand-in module, Backend named "cupy" on it), installed as ``cupy`` for the test."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed, so the CuPy kernels cannot be emulated on the CPU.")
    fake = emulated_cupy.stand_in(tmp_path)
    with emulated_cupy.cupy_replaced_by(fake):
        yield fake, emulated_cupy.device_backend(fake)


@pytest.mark.parametrize("cell,embedding,dropout", [("rnn", 0, 0.0), ("gru", 5, 0.3),
                                                    ("lstm", 0, 0.3), ("lstm", 5, 0.0)])
def test_device_step_reads_nothing_back_on_the_gpu_path(fake_gpu, cell, embedding, dropout):
    fake, be = fake_gpu
    model = CharLM(11, cell, 8, 2, embedding_size=embedding, dropout=dropout, seed=1, backend=be)
    assert model.rnn.engine == ("reference" if cell == "rnn" else "fast (cupy fused kernels)")
    step = DeviceStep(model, make_optimizer("adam", 0.01))
    stream = BatchStream(np.random.default_rng(0).integers(0, 11, 300), 3, 5, backend=be)
    state = model.initial_state(3)
    for k in range(3):
        batch = stream.next_batch()
        model.rnn.seed_dropout(k)
        with emulated_cupy.host_reads_refused():
            loss, state = step(batch, state, grad_clip=0.5, clip_value=1.0)
        assert isinstance(loss, emulated_cupy.DeviceArray) and loss.shape == ()
        assert np.isfinite(be.asnumpy(loss))
    assert all(isinstance(p, emulated_cupy.DeviceArray) for p in model.params.values())


def test_the_book_step_is_caught_reading_on_the_gpu_path(fake_gpu):
    """The control: ``train.train_step`` reads the loss (float) before its update."""
    fake, be = fake_gpu
    model = CharLM(7, "lstm", 6, 1, seed=1, backend=be)
    batch = BatchStream(np.arange(60) % 7, 2, 4, backend=be).next_batch()
    with emulated_cupy.host_reads_refused(), pytest.raises(emulated_cupy.HostRead, match="float"):
        train_step(model, make_optimizer("adam", 0.01), batch, model.initial_state(2), grad_clip=1.0)


def _run_config(tmp_path, name, **kw):
    base = dict(source="python-docs", max_chars=20_000, cell="lstm", hidden_size=12,
                num_layers=2, dropout=0.2, seq_len=8, batch_size=4, max_minutes=None,
                eval_every=10, eval_tokens=400, out_dir=str(tmp_path / name), progress=False,
                lr_decay=0.5, lr_decay_after=0, seed=3)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def gpu_runs(fake_gpu, monkeypatch):
    """Trainer on the stand-in, every DeviceStep call made with host reads refused; yields
    the list counting those calls."""
    fake, be = fake_gpu
    monkeypatch.setattr(runner, "get_backend", lambda name=None: be)
    calls, call = [], DeviceStep.__call__

    def refusing(self, *args, **kwargs):
        calls.append(1)
        with emulated_cupy.host_reads_refused():
            return call(self, *args, **kwargs)
    monkeypatch.setattr(DeviceStep, "__call__", refusing)
    yield calls


def test_a_training_run_on_the_gpu_path_resumes_as_if_never_stopped(gpu_runs, tmp_path):
    straight = Trainer(_run_config(tmp_path, "straight", max_steps=30)).run()
    assert len(gpu_runs) == straight.steps == 30
    Trainer(_run_config(tmp_path, "halves", max_steps=20)).run()
    resumed = Trainer.resume(str(tmp_path / "halves" / "last.npz"), {"max_steps": 30}).run()
    assert resumed.steps == 30 and len(gpu_runs) == 60
    for key, p in straight.model.params.items():
        np.testing.assert_array_equal(to_host(resumed.model.params[key]), to_host(p), err_msg=key)


def test_a_non_finite_loss_stops_a_gpu_run_in_one_sentence(gpu_runs, tmp_path):
    trainer = Trainer(_run_config(tmp_path, "nan", max_steps=5))
    trainer.model.params["head.b"][0] = np.inf
    with pytest.raises(TrainingDiverged, match=r"training loss became nan at step 1; training stopped"), \
            np.errstate(invalid="ignore", over="ignore"):
        trainer.train_step()
    assert len(gpu_runs) == 1


# ------------------------------------------------------------------ on a real GPU
@pytest.mark.needs_cupy         # tests/conftest.py: fails without a GPU where SCRATCHRNN_BACKEND=cupy
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_one_whole_device_step_captures_as_a_cuda_graph(cell):
    """Stream capture raises on a synchronous device-to-host copy, so a captured step has
    none. The step is run once eagerly first (kernel compiles, cuBLAS workspace), on a
    private memory pool that nothing else allocates from while the graph exists."""
    import cupy
    be = get_backend("cupy")
    model = CharLM(11, cell, 16, 2, embedding_size=8, seed=1, backend=be)
    step = DeviceStep(model, make_optimizer("adam", 0.01))
    stream_ = BatchStream(np.random.default_rng(0).integers(0, 11, 400), 4, 6, backend=be)
    batch, state = stream_.next_batch(), model.initial_state(4)
    pool = cupy.cuda.MemoryPool()
    stream = cupy.cuda.Stream(non_blocking=True)
    with cupy.cuda.using_allocator(pool.malloc), stream:
        step(batch, state, grad_clip=1.0)
        stream.begin_capture()
        loss, _ = step(batch, state, grad_clip=1.0)
        graph = stream.end_capture()
        graph.launch(stream)
    stream.synchronize()
    assert np.isfinite(float(loss))
