"""Tuning really teaches the bundled model a server fact, through LoRA and QLoRA, and the adapter
changes that guild's answers only."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from core.llm.engine.engine import Engine
from core.llm.models.loading import load_model
from core.llm.types import Request, user
from core.tuning.examples import IGNORE, encode_pair
from core.tuning.lora import run_lora_job
from core.tuning.spec import LoraJobSpec
from tests.fixtures.models import BUNDLED

from .conftest import QUESTION, mascot_pairs

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_only_answer_tokens_carry_labels(bundled_tokenizer):
    pair = mascot_pairs((QUESTION,))[0]
    example = encode_pair(bundled_tokenizer, pair, 512)
    assert example is not None
    answer = [t for t in example.labels if t != IGNORE]
    first = example.labels.index(answer[0])
    assert all(t == IGNORE for t in example.labels[:first])
    text = bundled_tokenizer.decode(answer)
    assert text.startswith(pair.output) and "<|im_end|>" in text  # learns to stop, too
    # The prompt part is exactly what the engine sends at inference time.
    prompt = bundled_tokenizer.apply_chat_template(
        pair.chat(), tokenize=False, add_generation_prompt=True
    )
    assert (
        list(example.input_ids[:first])
        == bundled_tokenizer(prompt, add_special_tokens=False)["input_ids"]
    )


def _spec(model_settings, files, out_dir, **changes) -> LoraJobSpec:
    train, held = files
    return LoraJobSpec(
        model=BUNDLED,
        data_dir=model_settings.data_dir,
        train_path=train,
        eval_path=held,
        out_dir=str(out_dir),
        threads=1,
        **changes,
    )


async def _answers(model_settings, adapter_dir: str) -> dict[str, str]:
    """Greedy answers of a private engine: base, the tuned guild, and another guild, batched."""
    loaded = await asyncio.to_thread(load_model, BUNDLED, model_settings)  # not the shared one
    engine = Engine(loaded, max_batch=4)
    try:
        base_before = (await engine.complete(Request(user(QUESTION), max_new_tokens=16))).text
        await engine.load_adapter("g1-v1", adapter_dir)
        tuned, base_after, other = await asyncio.gather(
            *(
                engine.complete(Request(user(QUESTION), guild_id=g, adapter=a, max_new_tokens=16))
                for g, a in ((1, "g1-v1"), (None, None), (2, None))
            )
        )
    finally:
        await engine.aclose()
    return {
        "base_before": base_before,
        "tuned": tuned.text,
        "base_after": base_after.text,
        "other_guild": other.text,
    }


async def test_lora_learns_the_fact_and_leaves_base_and_other_guilds_alone(
    model_settings, mascot_files, tmp_path
):
    spec = _spec(
        model_settings,
        mascot_files,
        tmp_path / "run",
        max_steps=6,
        learning_rate=2e-3,
        checkpoint_every=3,
    )
    result = await asyncio.to_thread(run_lora_job, spec)
    assert result.method == "lora-float32"
    assert result.eval_loss_after < result.eval_loss_before / 3, result.metrics()
    for name in ("adapter_config.json", "adapter_model.safetensors", "loss.png", "metrics.json"):
        assert os.path.isfile(os.path.join(result.adapter_dir, name)), name
    with open(os.path.join(result.adapter_dir, "metrics.json")) as f:
        assert json.load(f)["steps"] == 6
    answers = await _answers(model_settings, result.adapter_dir)
    assert "Zorbly" not in answers["base_before"]
    assert "Zorbly the purple otter" in answers["tuned"], answers
    assert answers["base_after"] == answers["base_before"], answers
    assert answers["other_guild"] == answers["base_before"], answers


async def test_qlora_on_a_4bit_base_learns_the_fact(model_settings, mascot_files, tmp_path):
    spec = _spec(
        model_settings,
        mascot_files,
        tmp_path / "run",
        qlora=True,
        max_steps=20,
        learning_rate=4e-3,
        checkpoint_every=10,
        probe_prompts=(QUESTION,),
        gradient_checkpointing=False,
    )  # on CPU it only costs time; on GPU it is on
    result = await asyncio.to_thread(run_lora_job, spec)
    assert result.method == "qlora-nf4"
    assert result.eval_loss_after < result.eval_loss_before / 3, result.metrics()
    with open(os.path.join(result.adapter_dir, "adapter_config.json")) as f:
        config = json.load(f)
    assert config["peft_type"] == "LORA"  # an adapter, never a merged 4-bit model
    assert not os.path.exists(os.path.join(result.adapter_dir, "model.safetensors"))
    # Greedy answers of the 4-bit model itself, before and after training.
    assert "Zorbly" not in result.samples_before[QUESTION]
    # The made-up name is the fact (the base never says it); 4-bit CPU kernels are not
    # bit-reproducible, so the exact wording after it varies between runs.
    assert "Zorbly" in result.samples_after[QUESTION], result.samples_after
    # Served by the engine on the fp32 base (no bitsandbytes on the serving path): the fact
    # carries over, wording may differ by the quantization error the adapter was trained on.
    answers = await _answers(model_settings, result.adapter_dir)
    assert "Zorbly" in answers["tuned"], answers
    assert answers["base_after"] == answers["base_before"], answers
