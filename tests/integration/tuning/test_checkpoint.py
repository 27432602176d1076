"""Checkpoints resume exactly what was saved and never run code from the file."""

from __future__ import annotations

import os
import pickle

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from core.tuning.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from core.tuning.spec import LoraJobSpec


def _model_and_optimizer():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    model = get_peft_model(
        LlamaForCausalLM(config), LoraConfig(r=2, target_modules=["q_proj", "v_proj"])
    )
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model(torch.tensor([[1, 2, 3]]), labels=torch.tensor([[1, 2, 3]])).loss.backward()
    optimizer.step()
    return model, optimizer


def test_a_saved_checkpoint_resumes_with_a_weights_only_load(tmp_path):
    spec = LoraJobSpec(out_dir=str(tmp_path))
    model, optimizer = _model_and_optimizer()
    save_checkpoint(spec, model, optimizer, 3, [2.0, 1.5, 1.2], 2.5, 99, {"q": "a"})
    fresh, fresh_optimizer = _model_and_optimizer()
    state = load_checkpoint(spec, fresh, fresh_optimizer)
    assert state is not None and (state.step, state.tokens, state.losses) == (
        3,
        99,
        [2.0, 1.5, 1.2],
    )
    assert fresh_optimizer.state_dict()["state"].keys() == optimizer.state_dict()["state"].keys()


class _Planted:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_planted_pickle_checkpoint_runs_nothing_and_starts_over(tmp_path):
    spec = LoraJobSpec(out_dir=str(tmp_path))
    marker = str(tmp_path / "pwned")
    with open(checkpoint_path(spec), "wb") as f:
        pickle.dump({"fingerprint": _Planted(marker)}, f)
    model, optimizer = _model_and_optimizer()
    assert load_checkpoint(spec, model, optimizer) is None
    assert not os.path.exists(marker)
