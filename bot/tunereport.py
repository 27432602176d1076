"""The words of /tune: a job's progress frame, its final result, the job and version lists.

Plain functions of core values (TuningJob, Adapter, QueuedJob) so the cog stays thin; every
text is escaped and fits one Discord message (render.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot import render
from core.tuning.jobs import TuningJob
from core.tuning.registry import Adapter, other_base_model
from core.tuning.tuner import QueuedJob

__all__ = [
    "Eta",
    "adapters_text",
    "finished_text",
    "job_choice_name",
    "jobs_text",
    "progress_text",
    "queued_text",
    "still_running_text",
    "version_choice_name",
]

FINISHED = ("done", "failed", "cancelled")
ERROR_CHARS = 300  # a failure reason is one short paragraph; the full one is in the worker log
_PHASES = {
    "starting": "starting",
    "loading": "loading the model",
    "eval_before": "measuring the eval loss",
    "training": "training",
    "eval_after": "measuring the eval loss again",
    "saving": "saving the adapter",
    "done": "recording the new version",
}


class Eta:
    """Time left from the training rate seen so far (steps since the first sighting)."""

    def __init__(self) -> None:
        self._first: tuple[float, int] | None = None

    def update(self, now: float, progress: dict[str, Any]) -> float | None:
        if progress.get("phase") != "training" or not progress.get("total_steps"):
            self._first = None  # a new attempt (another trainer took over) has its own pace
            return None
        step, total = int(progress.get("step", 0)), int(progress["total_steps"])
        if self._first is None or step < self._first[1]:
            self._first = (now, step)
            return None
        since, first_step = self._first
        if step <= first_step or now <= since:
            return None
        return (total - step) * (now - since) / (step - first_step)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def _method(spec: dict[str, Any]) -> str:
    return "QLoRA" if spec.get("qlora") else "LoRA"


def _header(queued: QueuedJob) -> str:
    epochs = f", {queued.spec.epochs} epochs" if not queued.spec.max_steps else ""
    return (
        f"Tuning job {queued.id} ({_method(queued.spec.to_dict())}{epochs}, "
        f"{queued.pairs} example{'' if queued.pairs == 1 else 's'} from {queued.source})"
    )


def queued_text(queued: QueuedJob) -> str:
    return f"⏳ {_header(queued)} is queued; waiting for the trainer to pick it up."


def _where(progress: dict[str, Any], eta_s: float | None = None) -> str:
    phase = str(progress.get("phase", "starting"))
    parts = [_PHASES.get(phase, phase).capitalize()]
    if phase == "training" and progress.get("total_steps"):
        parts[0] += f": step {progress.get('step', 0)}/{progress['total_steps']}"
    if phase == "training" and isinstance(progress.get("loss"), (int, float)):
        parts.append(f"loss {progress['loss']:.3f}")
    if eta_s is not None:
        parts.append(f"about {_duration(eta_s)} left")
    if progress.get("resumed_from"):
        parts.append(f"resumed from step {progress['resumed_from']}")
    return " · ".join(parts)


def progress_text(queued: QueuedJob, job: TuningJob, eta_s: float | None) -> str:
    """The in-progress frame of /tune start's reply."""
    if job.status == "queued":
        return queued_text(queued)
    return f"⏳ {_header(queued)}\n{_where(job.progress, eta_s)}"


def finished_text(job: TuningJob, adapter: Adapter | None) -> str:
    """The last word on a job: the new version and its eval loss, or why it stopped."""
    if job.status == "failed":
        reason = render.truncate(job.error or "no reason recorded", ERROR_CHARS)
        return render.escape(f"⚠️ Tuning job {job.id} failed: {reason}")
    if job.status == "cancelled" or adapter is None:
        return f"⏹️ Tuning job {job.id} was cancelled; the active adapter is unchanged."
    m = adapter.metrics
    lines = [
        f"✅ Tuning job {job.id} done: adapter **v{adapter.version}** "
        f"({adapter.method}, {m.get('steps', '?')} steps)."
    ]
    if "eval_loss_after" in m:
        held = (
            " (on the training examples: too few to hold any out)"
            if m.get("eval_on_train")
            else " (held-out examples)"
        )
        lines.append(f"Eval loss {m['eval_loss_before']:.3f} → {m['eval_loss_after']:.3f}{held}.")
    for prompt, after in list((m.get("samples_after") or {}).items())[:1]:
        before = (m.get("samples_before") or {}).get(prompt, "")
        if before.strip() or after.strip():  # a held-out question, answered before and after
            lines.append(f"“{_short(prompt)}”: before “{_short(before)}”, after “{_short(after)}”")
    lines.append(f"Not serving yet: `/tune activate version:{adapter.version}` to use it here.")
    return render.truncate(render.escape("\n".join(lines)), render.MESSAGE_LIMIT)


def _short(text: str, limit: int = 120) -> str:
    return render.truncate(" ".join(text.split()), limit, marker="…") or "(nothing)"


def still_running_text(job_id: int) -> str:
    return (
        f"⏳ Tuning job {job_id} is still running — see `/tune status`; "
        "this reply can no longer be updated."
    )


def _job_line(job: TuningJob) -> str:
    when = f"{job.created_at:%Y-%m-%d %H:%M}"
    line = f"`#{job.id}` **{job.status}** · {_method(job.spec)} · {when}"
    if job.status == "running":
        line += f" · {_where(job.progress)}"
    elif job.status == "done" and job.adapter_version:
        line += f" → v{job.adapter_version}"
    elif job.error:
        line += f" · {render.truncate(job.error, ERROR_CHARS)}"
    return line


def jobs_text(jobs: Sequence[TuningJob]) -> str:
    if not jobs:
        return "No tuning jobs on this server yet: start one with `/tune start`."
    text = "**Tuning jobs here** (newest first)\n" + "\n".join(_job_line(j) for j in jobs)
    return render.truncate(render.escape(text), render.MESSAGE_LIMIT)


def _eval_loss(a: Adapter, digits: int) -> str | None:
    """ "before → after" of the version's held-out eval loss, if it was measured."""
    m = a.metrics
    if "eval_loss_after" not in m:
        return None
    return f"{m['eval_loss_before']:.{digits}f} → {m['eval_loss_after']:.{digits}f}"


def _adapter_line(a: Adapter, serving: str | None = None) -> str:
    loss = f" · eval loss {change}" if (change := _eval_loss(a, 3)) else ""
    mark = "✅ " if a.active else "▫️ "
    state = " **active**" if a.active else ""
    line = f"{mark}**v{a.version}**{state} · {a.method}{loss} · {a.created_at:%Y-%m-%d %H:%M}"
    return line + _other_model(a, serving)


def _other_model(a: Adapter, serving: str | None) -> str:
    """A version trained on another preset cannot be activated here (registry.other_base_model):
    say so in the list rather than after a moderator picks it."""
    return f" · ⚠️ trained on {a.base_model}" if other_base_model(a, serving) else ""


def adapters_text(adapters: Sequence[Adapter], serving: str | None = None) -> str:
    """The versions, newest first; `serving` (the bot's model preset) marks the versions of
    another preset, which cannot serve here."""
    if not adapters:
        return "No adapter versions here yet; this server uses the base model."
    active = next((a for a in adapters if a.active), None)
    now = f"v{active.version}" if active else "the base model"
    lines = [
        f"**Adapter versions here** (serving {now})",
        *(_adapter_line(a, serving) for a in reversed(adapters)),
    ]
    return render.truncate(
        render.escape("\n".join(lines)),
        render.MESSAGE_LIMIT,
        marker="\n… (older versions left out)",
    )


def version_choice_name(a: Adapter, serving: str | None = None) -> str:
    """An autocomplete label (≤ 100 chars)."""
    loss = f", eval {change}" if (change := _eval_loss(a, 2)) else ""
    other = f" (trained on {a.base_model})" if other_base_model(a, serving) else ""
    active = " (active)" if a.active else ""
    return render.truncate(f"v{a.version}{active} — {a.method}{loss}{other}", 100)


def job_choice_name(job: TuningJob) -> str:
    """An autocomplete label for a live job (≤ 100 chars)."""
    where = f" · {_where(job.progress)}" if job.status == "running" else ""
    return render.truncate(
        f"#{job.id} {job.status} · {_method(job.spec)} · {job.created_at:%Y-%m-%d %H:%M}{where}",
        100,
    )
