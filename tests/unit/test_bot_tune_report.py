"""The words of /tune: ETA from the observed pace, final results, lists within Discord's limits,
and the loss curve drawn again from a version's metrics when its PNG is missing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot import render, tunereport
from core.tuning.jobs import TuningJob
from core.tuning.registry import Adapter
from core.tuning.tuner import QueuedJob, job_spec, loss_curve_png

NOW = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)


def _job(**changes: Any) -> TuningJob:
    values: dict[str, Any] = dict(
        id=7,
        guild_id=1,
        status="running",
        spec={"qlora": False},
        progress={},
        error=None,
        attempts=1,
        worker="w",
        adapter_version=None,
        created_at=NOW,
        started_at=NOW,
        heartbeat_at=NOW,
        finished_at=None,
    )
    return TuningJob(**(values | changes))


def _adapter(version: int, active: bool = False, path: str = "/nowhere", **metrics: Any) -> Adapter:
    return Adapter(
        guild_id=1,
        version=version,
        path=path,
        job_id=None,
        method="lora-float32",
        base_model="/models/tiny",
        metrics=metrics,
        active=active,
        created_at=NOW,
    )


def test_eta_follows_the_pace_and_restarts_when_another_trainer_takes_over():
    eta, training = tunereport.Eta(), {"phase": "training", "total_steps": 10}
    assert eta.update(0.0, training | {"step": 2}) is None  # one sighting: no pace yet
    assert eta.update(4.0, training | {"step": 4}) == 12.0  # 2 s a step, 6 steps left
    assert eta.update(5.0, {"phase": "loading"}) is None  # the job was taken over
    assert eta.update(6.0, training | {"step": 1}) is None
    assert eta.update(7.0, training | {"step": 5}) == 1.25


def test_progress_frame_shows_step_loss_and_time_left():
    queued = QueuedJob(7, 1, 40, "data.jsonl", job_spec("m", qlora=True, epochs=2))
    job = _job(progress={"phase": "training", "step": 3, "total_steps": 10, "loss": 1.23456})
    assert tunereport.progress_text(queued, job, 150.0) == (
        "⏳ Tuning job 7 (QLoRA, 2 epochs, 40 examples from data.jsonl)\n"
        "Training: step 3/10 · loss 1.235 · about 2 min left"
    )
    assert "is queued" in tunereport.progress_text(queued, _job(status="queued"), None)


def test_a_failure_is_short_and_escaped():
    job = _job(status="failed", error="@everyone " + "x" * 5000)
    text = tunereport.finished_text(job, None)
    assert text.startswith("⚠️ Tuning job 7 failed: @\u200beveryone")
    assert len(text) < 400 and text.endswith(render.TRUNCATED)


def test_the_result_names_the_version_and_the_eval_loss():
    adapter = _adapter(
        3,
        steps=12,
        eval_loss_before=2.5,
        eval_loss_after=0.75,
        samples_before={"Mascot?": ""},
        samples_after={"Mascot?": "Zorbly."},
    )
    text = tunereport.finished_text(_job(status="done", adapter_version=3), adapter)
    assert text.splitlines() == [
        "✅ Tuning job 7 done: adapter **v3** (lora-float32, 12 steps).",
        "Eval loss 2.500 → 0.750 (held-out examples).",
        "“Mascot?”: before “(nothing)”, after “Zorbly.”",
        "Not serving yet: `/tune activate version:3` to use it here.",
    ]


def test_lists_fit_one_message():
    jobs = [_job(id=i, status="failed", error="e" * 900) for i in range(40)]
    assert len(tunereport.jobs_text(jobs)) <= render.MESSAGE_LIMIT
    versions = [
        _adapter(v, active=v == 5, eval_loss_before=2.0, eval_loss_after=1.0) for v in range(1, 200)
    ]
    text = tunereport.adapters_text(versions)
    assert len(text) <= render.MESSAGE_LIMIT and "(serving v5)" in text
    assert text.splitlines()[1].startswith("▫️ **v199**")  # newest first
    assert tunereport.version_choice_name(versions[4]) == (
        "v5 (active) — lora-float32, eval 2.00 → 1.00"
    )


def test_loss_curve_is_the_kept_file_else_drawn_from_the_metrics(tmp_path: Path):
    kept = tmp_path / "v1"
    kept.mkdir()
    (kept / "loss.png").write_bytes(b"\x89PNG kept")
    assert loss_curve_png(_adapter(1, path=str(kept))) == b"\x89PNG kept"
    drawn = loss_curve_png(
        _adapter(
            2,
            path=str(tmp_path / "gone"),
            train_losses=[3.0, 2.0, 1.5],
            eval_loss_before=3.1,
            eval_loss_after=1.6,
        )
    )
    assert drawn is not None and drawn.startswith(b"\x89PNG") and len(drawn) > 1000
    assert loss_curve_png(_adapter(3, path=str(tmp_path / "gone"))) is None


def test_versions_of_another_preset_are_marked():
    """After GURU_MODEL's default changed, a version trained on SmolLM2 cannot serve on Qwen:
    the list and the autocomplete say so before a moderator picks it."""
    old = replace(_adapter(1), base_model="smollm2-135m")
    new = replace(_adapter(2, active=True), base_model="qwen2.5-coder-0.5b")
    text = tunereport.adapters_text([old, new], "qwen2.5-coder-0.5b")
    assert "trained on smollm2-135m" in text.splitlines()[2]  # v1, listed after v2
    assert "trained on" not in text.splitlines()[1]
    assert tunereport.version_choice_name(old, "qwen2.5-coder-0.5b").endswith(
        "(trained on smollm2-135m)"
    )
    assert "trained on" not in tunereport.adapters_text([old], None)  # serving unknown: no mark
