"""Tampered run state that passes the checkpoint's schema: every number of the saved progress,
batch stream and optimizer replaced by values no run writes (10**400, -1, NaN, a string, a
bool, null, 1e308). Resuming either works -- and the resumed run trains -- or is refused with
a CheckpointError naming the file; never an OverflowError or TypeError from the math. And the
valid variations (the same numbers, a smaller lr, a smaller step count) are accepted."""
import json

import pytest

from scratchrnn.core.errors import CheckpointError, ScratchRNNError
from scratchrnn.lm.checkpoint import load_checkpoint, save_checkpoint
from scratchrnn.lm.config import TrainConfig
from scratchrnn.lm.run import Trainer

pytestmark = pytest.mark.bad_input("tampered checkpoints")

BAD = [10 ** 400, -1, float("nan"), "1", True, None, 1e308]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(source="python-docs", max_chars=20000, cell="lstm", hidden_size=8, seq_len=8,
                      batch_size=2, max_steps=4, max_minutes=None, eval_every=2, eval_tokens=200,
                      optimizer="adam", lr_decay=0.9, lr_decay_after=0, progress=False, out_dir=str(out))
    Trainer(cfg).run()
    arrays, meta = load_checkpoint(out / "last.npz")
    return arrays, meta


def _leaves(meta):
    """(section, key) of every number in the saved progress, stream and optimizer."""
    out = []
    for section in ("progress", "stream", "optim"):
        for key, value in meta[section].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) or key == "nesterov":
                out.append((section, key))
    return out


def _resume_and_train(arrays, meta, tmp_path, name, max_steps=6):
    path = tmp_path / name / "last.npz"
    save_checkpoint(path, arrays, meta)
    trainer = Trainer.resume(path, overrides={"max_steps": max_steps})
    return trainer.run()


def test_every_number_of_the_saved_state_tampered(saved, tmp_path):
    arrays, meta = saved
    leaves = _leaves(meta)
    assert {"step", "t", "lr", "epoch", "beta1"} <= {k for _s, k in leaves}
    outcomes = {"resumed": 0, "refused": 0}
    for section, key in leaves:
        for i, bad in enumerate(BAD):
            tampered = json.loads(json.dumps(meta))
            tampered[section][key] = bad
            try:
                _resume_and_train(arrays, tampered, tmp_path, f"{section}-{key}-{i}")
                outcomes["resumed"] += 1
            except CheckpointError as exc:
                assert "last.npz" in str(exc), exc
                outcomes["refused"] += 1
            except ScratchRNNError:          # e.g. a learning rate that makes the loss diverge
                outcomes["refused"] += 1
    assert outcomes["refused"] > 0 and outcomes["resumed"] > 0, outcomes


def test_valid_variations_are_accepted(saved, tmp_path):
    arrays, meta = saved
    same = json.loads(json.dumps(meta))
    assert _resume_and_train(arrays, same, tmp_path, "same").steps == 6
    smaller_lr = json.loads(json.dumps(meta))
    smaller_lr["optim"]["lr"] = meta["optim"]["lr"] / 2
    assert _resume_and_train(arrays, smaller_lr, tmp_path, "lr").steps == 6
    fresh_optimizer_clock = json.loads(json.dumps(meta))
    fresh_optimizer_clock["optim"]["t"] = 1
    _resume_and_train(arrays, fresh_optimizer_clock, tmp_path, "t")
