"""The Llama-2-7B memory arithmetic of `guru bench tune` (computed from the model's shapes)."""

from __future__ import annotations

from bench.tune import llama2_7b_memory


def test_llama2_7b_arithmetic_matches_the_published_shapes():
    m = llama2_7b_memory(rank=16)
    assert m["params"] == 6_738_415_616  # Llama-2-7B's exact parameter count
    assert m["lora_params_r16"] == 39_976_960  # r=16 on q,k,v,o,gate,up,down of 32 blocks
    assert m["full_finetune_gb"] > 100 > 15 > m["lora_gb"] > 13 > 5 > m["qlora_gb"] > 3.5
