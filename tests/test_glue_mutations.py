"""Tests that guard the glue, each written so that a realistic bug fails it:

- ``onepage.clip`` skipping one gradient, or never scaling, or scaling by the wrong factor;
- the trainer not starting from zeros at an epoch start, or carrying the state between
  shuffled windows -- checked against an independent recomputation of every step's loss
  (the model's own forward from the state the rules call for), not against the code itself;
- ``write_atomically`` no longer fsyncing the directory after the rename;
- the checkpoint fuzz tests accept "identical or refused": here valid variations of a
  checkpoint (members in another order, no sidecar, other budget fields, a cleared history)
  are pinned as *accepted*, loading the identical model.
"""
import os
import zipfile

import numpy as np
import pytest

from scratchrnn.book import onepage
from scratchrnn.lm import checkpoint as ckpt
from scratchrnn.lm.checkpoint import load_checkpoint, save_checkpoint, sidecar_path
from scratchrnn.lm.config import TrainConfig
from scratchrnn.lm.run import Trainer
from scratchrnn.lm.saved import load_model


# ------------------------------------------------------------------ onepage.clip
def _grads(rng, scale):
    return {"W_x": rng.normal(size=(5, 12)) * scale, "W_h": rng.normal(size=(3, 12)) * scale,
            "b": rng.normal(size=(12,)) * scale, "W_y": rng.normal(size=(3, 5)) * scale}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clip_scales_every_gradient_by_the_same_factor(seed):
    rng = np.random.default_rng(seed)
    grads = _grads(rng, 10.0)
    before = {k: v.copy() for k, v in grads.items()}
    joint = np.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in before.values()))
    max_norm = joint / 7.0                      # well above: every gradient must shrink 7 times
    norm = onepage.clip(grads, max_norm)
    assert norm == pytest.approx(joint, rel=1e-12)
    for k in before:                            # each one, not just the joint norm
        np.testing.assert_allclose(grads[k], before[k] / 7.0, rtol=1e-12, err_msg=k)
    after = np.sqrt(sum(float(np.sum(v ** 2)) for v in grads.values()))
    assert after == pytest.approx(max_norm, rel=1e-12)


def test_clip_leaves_gradients_below_the_limit_alone():
    grads = _grads(np.random.default_rng(3), 1e-3)
    before = {k: v.copy() for k, v in grads.items()}
    onepage.clip(grads, 1e6)
    for k in before:
        assert np.array_equal(grads[k], before[k]), k


# ------------------------------------------------------- the trainer's carried state
def _trainer(tmp_path, shuffle):
    cfg = TrainConfig(source="python-docs", max_chars=700, cell="gru", hidden_size=8, seq_len=8,
                      batch_size=2, optimizer="sgd", lr=1e-30, grad_clip=0.0, dropout=0.0,
                      dtype="float64", shuffle=shuffle, max_steps=100, max_minutes=None,
                      eval_every=1000, eval_tokens=100, progress=False, out_dir=str(tmp_path / "run"))
    return Trainer(cfg)


@pytest.mark.parametrize("shuffle", [False, True])
def test_the_trainer_starts_from_zeros_where_the_rules_say(tmp_path, shuffle):
    """lr=1e-30 leaves the float64 weights bit-identical (the update is below their last
    bit), so each step's loss can be recomputed here from the state the rules call for:
    zeros at every epoch start and for every shuffled window, else the final state of this
    recomputation's previous window."""
    trainer = _trainer(tmp_path, shuffle)
    model, stream = trainer.model, trainer.stream
    windows = len(stream)
    assert 3 <= windows <= 40, windows          # a few epochs in the steps below
    weights = {k: v.copy() for k, v in model.params.items()}
    mine, epoch_starts, sensitive = None, 0, 0
    for step in range(2 * windows + 3):
        at_start = stream.index == 0
        position = stream.state_dict()
        peek = stream.next_batch()                       # the window the trainer takes next
        stream.load_state_dict(position)                 # ... rewound for it
        expected_state = model.initial_state(2) if (at_start or shuffle or mine is None) else mine
        model.eval()
        expected, mine = model.loss(peek.x, peek.y, expected_state, peek.mask)
        if at_start and step > 0 and not shuffle or shuffle and step > 0:
            carried_loss, _ = model.loss(peek.x, peek.y, trainer.state, peek.mask)
            sensitive += abs(carried_loss - expected) > 1e-6      # a carried state would show
        model.train()
        got = trainer.train_step()
        assert got == pytest.approx(expected, abs=1e-9), (step, stream.epoch, at_start)
        epoch_starts += at_start
    assert epoch_starts >= 3
    assert sensitive >= 2, "the zero and the carried state score these windows alike"
    for k, v in weights.items():                # the premise: nothing moved
        assert np.array_equal(model.params[k], v), k


# ----------------------------------------------------- the directory fsync
def test_an_atomic_write_fsyncs_the_directory_after_the_rename(tmp_path, monkeypatch):
    opened, events = {}, []
    real_open, real_fsync, real_replace = os.open, os.fsync, os.replace

    def spy_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        opened[fd] = os.fspath(path)
        return fd

    def spy_fsync(fd):
        fd = fd if isinstance(fd, int) else fd.fileno()
        events.append(("fsync", opened.get(fd)))
        return real_fsync(fd)

    def spy_replace(src, dst):
        events.append(("replace", os.fspath(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    target = tmp_path / "f.bin"
    ckpt.write_atomically(target, lambda f: f.write(b"data"))
    assert target.read_bytes() == b"data"
    assert ("replace", str(target)) in events
    after = events[events.index(("replace", str(target))) + 1:]
    assert ("fsync", str(tmp_path)) in after, events


# --------------------------------------------- valid checkpoint variations are accepted
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("valid") / "run"
    cfg = TrainConfig(source="python-docs", max_chars=3000, cell="lstm", hidden_size=6, num_layers=2,
                      embedding_size=5, seq_len=8, batch_size=2, max_steps=2, eval_every=2,
                      max_minutes=None, progress=False, out_dir=str(out))
    path = Trainer(cfg).run().last_path
    return path, load_model(path)[0]


def _same_model(path, original):
    model = load_model(path)[0]
    assert model.config == original.config
    for k, p in original.params.items():
        assert model.params[k].tobytes() == p.tobytes(), k


def _meta_for_save(meta):
    return {k: v for k, v in meta.items() if k != "format_version"}


def test_members_in_another_order_are_accepted(saved, tmp_path):
    path, original = saved
    arrays, meta = load_checkpoint(path)
    target = tmp_path / "reordered.npz"
    save_checkpoint(target, dict(reversed(list(arrays.items()))), _meta_for_save(meta))
    with zipfile.ZipFile(target) as zf:
        names = zf.namelist()
    assert names != sorted(names) or len(names) < 2
    _same_model(target, original)


def test_a_missing_sidecar_is_accepted(saved, tmp_path):
    path, original = saved
    target = tmp_path / "copy.npz"
    target.write_bytes(open(path, "rb").read())
    assert not os.path.exists(sidecar_path(target))
    _same_model(target, original)


@pytest.mark.parametrize("change", ["budget", "history cleared", "elapsed zero", "other out_dir"])
def test_valid_metadata_variations_are_accepted(saved, tmp_path, change):
    path, original = saved
    arrays, meta = load_checkpoint(path)
    meta = _meta_for_save(meta)
    if change == "budget":
        meta["train"] = dict(meta["train"], max_steps=10 ** 6, max_minutes=5.0, eval_every=7)
    elif change == "history cleared":
        meta["history"] = {"train": [], "val": []}
    elif change == "elapsed zero":
        meta["progress"] = dict(meta["progress"], elapsed_s=0.0)
    else:
        meta["train"] = dict(meta["train"], out_dir=str(tmp_path / "elsewhere"))
    target = tmp_path / "variant.npz"
    save_checkpoint(target, arrays, meta)
    _same_model(target, original)
    trainer = Trainer.resume(target, overrides={"max_steps": meta["progress"]["step"] + 1})
    assert trainer.run().steps == meta["progress"]["step"] + 1
