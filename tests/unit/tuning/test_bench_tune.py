"""The Llama-2-7B memory arithmetic of `guru bench tune` (computed from the model's shapes)."""

from __future__ import annotations

import pytest

from bench.tune import llama2_7b_memory


def test_llama2_7b_arithmetic_matches_the_published_shapes():
    m = llama2_7b_memory(rank=16)
    assert m["params"] == 6_738_415_616  # Llama-2-7B's exact parameter count
    assert m["lora_params_r16"] == 39_976_960  # r=16 on q,k,v,o,gate,up,down of 32 blocks
    # 16 bytes/param for full fine-tuning (bf16 weights + grads, fp32 Adam m, v and master
    # weights); LoRA keeps 2 bytes/param frozen + 16 per trainable one; QLoRA ~0.5 + 16.
    assert m["full_finetune_gb"] == pytest.approx(6_738_415_616 * 16 / 1e9, abs=0.05)
    assert m["lora_gb"] == pytest.approx((6_738_415_616 * 2 + 39_976_960 * 16) / 1e9, abs=0.05)
    assert 3.5 < m["qlora_gb"] < m["lora_gb"] / 3
