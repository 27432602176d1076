"""Turn the workers' raw results into medians, ratios, target verdicts and a readable table.

Pure functions over plain dicts (what the workers print as JSON), so the summary logic is
testable without running a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.measure import median, spread
from bench.quality import judge_path

__all__ = ["TARGETS", "summarize_path", "summarize", "render"]

LOAD_LIMIT_S = 5.0
# Issue #16's targets, all against llama.cpp in the same run (same GGUF, threads, prompts).
TARGETS: dict[str, str] = {
    "single_vs_llamacpp": "single-stream decode >= 1.0x llama.cpp",
    "aggregate8_vs_llamacpp": "aggregate@8 >= 1.25x llama.cpp batched@8",
    "ttft_long_vs_llamacpp": "TTFT (~1k-token prompt) <= llama.cpp's",
    "rss_vs_llamacpp": "peak RSS <= 1.3x llama.cpp's",
    "load_s": f"warm-restart load <= {LOAD_LIMIT_S:.0f} s",
    "quality": "quality gate passes",
}


def _pick(runs: Sequence[Mapping[str, Any]], *keys: str) -> list[float | None]:
    values: list[float | None] = []
    for run in runs:
        value: Any = run
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        values.append(value)
    return values


def summarize_path(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Medians over rounds (plus min-max) of one configuration's speed results."""
    speed = [r for r in runs if "single" in r]
    out: dict[str, Any] = {"runs": len(speed)}
    for name, keys in {
        "ttft_s": ("single", "ttft_s"),
        "decode_tps": ("single", "decode_tps"),
        "load_s": ("load_s",),
        "ttft_long_s": ("ttft_long", "ttft_s"),
        "import_s": ("import_s",),
    }.items():
        values = _pick(speed, *keys)
        out[name] = median(values)
        out[f"{name}_range"] = spread(values)
    out["peak_rss_mb"] = max((r.get("peak_rss_mb", 0.0) for r in speed), default=None)
    levels = sorted({int(k) for r in speed for k in r.get("concurrency", {})})
    out["aggregate_tps"] = {}
    out["ttft_median_at"] = {}
    for level in levels:
        key = str(level)
        out["aggregate_tps"][key] = median(_pick(speed, "concurrency", key, "aggregate_tps"))
        out[f"aggregate_tps_range_{key}"] = spread(
            _pick(speed, "concurrency", key, "aggregate_tps")
        )
        out["ttft_median_at"][key] = median(_pick(speed, "concurrency", key, "ttft_median_s"))
    tokens = [r["single"]["tokens"] for r in speed]
    tokens += [c["min_tokens"] for r in speed for c in r.get("concurrency", {}).values()]
    out["min_tokens"] = min(tokens, default=None)
    # Informational: batch answers depend on which rows share a step, so no gate on them.
    out["batch_loops"] = median(_pick(speed, "batch_loops"))
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _targets(path: Mapping[str, Any], llama: Mapping[str, Any] | None) -> dict[str, Any]:
    """Ratios against llama.cpp and the verdict of each target (None = not measured)."""
    llama = llama or {}
    ours8, theirs8 = path["aggregate_tps"].get("8"), (llama.get("aggregate_tps") or {}).get("8")
    ratios = {
        "single_vs_llamacpp": _ratio(path["decode_tps"], llama.get("decode_tps")),
        "aggregate8_vs_llamacpp": _ratio(ours8, theirs8),
        "ttft_long_vs_llamacpp": _ratio(path.get("ttft_long_s"), llama.get("ttft_long_s")),
        "rss_vs_llamacpp": _ratio(path.get("peak_rss_mb"), llama.get("peak_rss_mb")),
        # Informational: the old yardstick (our 8 streams against llama.cpp's single stream).
        "aggregate8_vs_llamacpp_single": _ratio(ours8, llama.get("decode_tps")),
    }

    def verdict(value: float | None, ok: bool) -> dict[str, Any]:
        return {"value": value, "passed": None if value is None else ok}

    single, a8, ttft, rss = (ratios[k] for k in list(TARGETS)[:4])
    load = path.get("load_s")
    quality = (path.get("quality") or {}).get("passed")
    targets = {
        "single_vs_llamacpp": verdict(single, single is not None and single >= 1.0),
        "aggregate8_vs_llamacpp": verdict(a8, a8 is not None and a8 >= 1.25),
        "ttft_long_vs_llamacpp": verdict(ttft, ttft is not None and ttft <= 1.0),
        "rss_vs_llamacpp": verdict(rss, rss is not None and rss <= 1.3),
        "load_s": verdict(load, load is not None and load <= LOAD_LIMIT_S),
        "quality": {"value": None, "passed": quality},
    }
    return {"ratios": ratios, "targets": targets}


def summarize(
    results: Sequence[Mapping[str, Any]],
    paths: Sequence[str],
    reference: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Everything the report shows; `reference` = the fp32 run that carries quality answers."""
    llama_runs = [r for r in results if r.get("kind") == "llamacpp"]
    skipped = next((r["skipped"] for r in llama_runs if "skipped" in r), None)
    llama = None
    if llama_runs and not skipped:
        llama = summarize_path(llama_runs)
        for key in ("version", "library", "system_info"):
            llama[key] = llama_runs[0].get(key)
    out: dict[str, Any] = {"paths": {}, "llamacpp": llama or {"skipped": skipped}}
    ref_quality = (reference or {}).get("quality") or {}
    for path in paths:
        runs = [r for r in results if r.get("kind") == "ours" and r.get("path") == path]
        summary = summarize_path(runs)
        quality_run = next((r for r in runs if r.get("quality")), None)
        if quality_run and ref_quality:
            summary["quality"] = _quality(path, ref_quality, quality_run["quality"])
        summary.update(_targets(summary, llama))
        out["paths"][path] = summary
    return out


def _quality(path: str, ref: Mapping[str, Any], got: Mapping[str, Any]) -> dict[str, Any]:
    """The gate's verdict plus the offending answers (fp32's beside them), for a human to read."""
    long_loops = sum(1 for looped, _ in got.get("long", []) if looped)
    ref_long_loops = sum(1 for looped, _ in ref.get("long", []) if looped)
    verdict = judge_path(
        path,
        {q: (v[0], v[1]) for q, v in ref["short"].items()},
        {q: (v[0], v[1]) for q, v in got["short"].items()},
        long_loops=long_loops,
        reference_long_loops=ref_long_loops,
    )
    result = verdict.as_dict()
    result["reference"] = path == "float32"
    result["failures"] = [
        {"question": q, "answer": got["short"].get(q, [0, 0, ""])[2], "fp32": ref["short"][q][2]}
        for q in verdict.wrong
    ]
    result["long_loop_answers"] = [text for looped, text in got.get("long", []) if looped]
    return result


def _fmt(value: Any, spec: str = ".2f") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "PASS" if value else "FAIL"
    return format(value, spec)


def render(report: Mapping[str, Any]) -> str:
    """The human-readable table of `guru bench llm`."""
    host = report["host"]
    lines = [
        f"guru bench llm: {report['model']}, threads={report['threads']}, "
        f"{report['rounds']} round(s), {report['tokens']} new tokens, greedy "
        f"(medians over rounds; prompts {report['prompt_tokens']} tokens)",
        f"host: {host['cpus']} CPUs; load average (1 min) start {host['loadavg_start']:.2f}, "
        f"end {host['loadavg_end']:.2f}, range {host['loadavg_min']:.2f}–{host['loadavg_max']:.2f}",
        "",
    ]
    levels = report["levels"]
    header = ["setup", "TTFT s", f"TTFT@{report.get('ttft_prompt_tokens', '1k')} s"]
    header += ["decode tok/s"] + [f"agg@{n} tok/s" for n in levels]
    header += ["peak RSS MiB", "load s", "imports s"]
    rows = [header]
    setups = [(f"ours {path}", s) for path, s in report["paths"].items()]
    llama = report["llamacpp"]
    if "skipped" not in llama:  # its agg@N = its own batched decoding of N streams
        setups.append((f"llama.cpp {llama.get('version', '')} (batched)", llama))
    for name, s in setups:
        rows.append(
            [name, _fmt(s["ttft_s"]), _fmt(s.get("ttft_long_s")), _fmt(s["decode_tps"], ".1f")]
            + [_fmt(s["aggregate_tps"].get(str(n)), ".1f") for n in levels]
            + [_fmt(s["peak_rss_mb"], ".0f"), _fmt(s["load_s"]), _fmt(s.get("import_s"))]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    if "skipped" in llama:
        lines += ["", str(llama["skipped"])]
    elif llama.get("system_info"):
        lines += ["", f"llama.cpp build ({llama.get('library')}): {llama['system_info']}"]
    lines += ["", "targets (same run, same GGUF, same threads):"]
    for path, s in report["paths"].items():
        lines.append(f"  {path}:")
        for name, desc in TARGETS.items():
            t = s["targets"][name]
            value = _fmt(t["value"], ".2f" if "vs" in name else ".1f")
            status = "n/a" if t["passed"] is None else _fmt(t["passed"])
            lines.append(f"    {desc:<42} {value:>8}  {status}")
        old = s["ratios"].get("aggregate8_vs_llamacpp_single")
        lines.append(f"    (aggregate@8 / llama.cpp single stream: {_fmt(old)}x, informational)")
    lines += [
        "",
        "quality gate (greedy, one request at a time, vs fp32; a loop = a 4-gram repeated 3x,",
        "or an 8-gram 3x in long answers; batch@max loops are informational):",
    ]
    for path, s in report["paths"].items():
        q = s.get("quality")
        if not q:
            lines.append(f"  {path}: not measured")
            continue
        role = " (reference)" if q.get("reference") else ""
        lines.append(
            f"  {path}{role}: correct {q['correct']}/{q['total']}, loops {q['loops']}, "
            f"long-answer loops {q['long_loops']} (fp32: {q['reference_long_loops']}), "
            f"batch loops {_fmt(s.get('batch_loops'), '.0f')}/{max(report['levels'])} "
            f"-> {_fmt(q['passed'])}"
        )
        for failure in q["failures"]:
            lines.append(f"    wrong: {failure['question']} -> {failure['answer'][:100]!r}")
    for error in report.get("errors", []):
        lines.append(f"error: {error}")
    return "\n".join(lines)
