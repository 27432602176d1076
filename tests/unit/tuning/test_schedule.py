"""The training recipe's pure parts: the learning-rate schedule and the resumable batch order."""

from __future__ import annotations

import pytest

from core.tuning.lora import batch_indices, get_lr
from core.tuning.spec import LoraJobSpec


def test_lr_warms_up_then_decays_to_a_tenth():
    spec = LoraJobSpec(learning_rate=1e-3, warmup_steps=2)
    lrs = [get_lr(step, spec, 10) for step in range(11)]
    assert lrs[0] == pytest.approx(5e-4) and lrs[1] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:]))
    assert lrs[10] == pytest.approx(1e-4)


def test_batches_cover_each_epoch_once_and_repeat_exactly_on_resume():
    spec = LoraJobSpec(batch_size=4, seed=3)
    epoch0 = [batch_indices(step, 10, spec) for step in range(3)]
    assert sorted(i for batch in epoch0 for i in batch) == list(range(10))
    assert [len(b) for b in epoch0] == [4, 4, 2]
    assert batch_indices(1, 10, spec) == epoch0[1]  # a resumed run sees the same batch
    assert batch_indices(3, 10, spec) != epoch0[0]  # a new epoch is shuffled anew
