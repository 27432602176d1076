"""The text report of `guru bench answers`: one row per set × prompt variant, held-out apart."""

from __future__ import annotations

from typing import Any

__all__ = ["render", "markdown_row"]

HEADER = (
    f"{'set / variant':<30} {'n':>3} {'cited ok':>8} {'attrib ok':>9} {'uncited':>7} "
    f"{'wrong':>6} {'refused':>7} {'loop':>5} {'off-top ref':>11} {'p50 s':>6} {'p95 s':>6} "
    f"{'chars':>5}"
)


def _pct(block: dict[str, Any], verdict: str) -> str:
    value = block["pct"][verdict]
    return "-" if value is None else f"{value:.0f}%"


def _line(label: str, block: dict[str, Any], entry: dict[str, Any] | None) -> str:
    off = entry["off_topic"] if entry else None
    lat = entry["latency_s"] if entry else None
    off_text = f"{off['refused']}/{off['questions']}" if off else ""
    p50 = f"{lat['p50']}" if lat and lat["p50"] is not None else ""
    p95 = f"{lat['p95']}" if lat and lat["p95"] is not None else ""
    chars = entry.get("answer_chars_p50") if entry else None
    return (
        f"{label:<30} {block['questions']:>3} {_pct(block, 'correct_cited'):>8} "
        f"{_pct(block, 'correct_attributed'):>9} "
        f"{_pct(block, 'correct_uncited'):>7} {_pct(block, 'wrong'):>6} "
        f"{_pct(block, 'wrongly_refused'):>7} {_pct(block, 'empty_or_looping'):>5} "
        f"{off_text:>11} {p50:>6} {p95:>6} {'' if chars is None else int(chars):>5}"
    )


def render(report: dict[str, Any]) -> str:
    load = ", ".join(f"{x:.1f}" for x in report["load_before"])
    rss = report.get("peak_rss_gib")
    lines = [
        f"guru bench answers — {report['model']}, {report['date']}, {report['threads']} threads, "
        f"load before {load}" + (f", peak RSS {rss} GiB" if rss is not None else ""),
        HEADER,
    ]
    for name, variants in report["sets"].items():
        for variant, entry in variants.items():
            lines.append(_line(f"{name} / {variant}", entry, entry))
            lines.append(_line("  held-out half", entry["held_out_half"], None))
    lines.append(
        "cited ok = states every fact and the model cites a gold page by its [n]; attrib ok = "
        "every fact and the answer shown cites a gold page after attribution (not the "
        "'Sources:' line); uncited = every fact, no gold citation by the model; wrong = "
        "answered with a fact missing; refused = answerable but "
        "refused; loop = empty or looping; latency over answers the model wrote; chars = p50 "
        "length of the answers shown."
    )
    for variants in report["sets"].values():
        for entry in variants.values():
            lines.append(f"rows: {entry['rows_file']}")
    return "\n".join(lines)


def markdown_row(model: str, name: str, variant: str, entry: dict[str, Any]) -> str:
    """One README table row (all questions, then the held-out half in parentheses)."""

    def both(verdict: str) -> str:
        return f"{_pct(entry, verdict)} ({_pct(entry['held_out_half'], verdict)})"

    off, lat = entry["off_topic"], entry["latency_s"]
    return (
        f"| {model} | {name} | {variant} | {both('correct_cited')} | "
        f"{both('correct_attributed')} | {both('correct_uncited')} | "
        f"{both('wrong')} | {both('wrongly_refused')} | {both('empty_or_looping')} | "
        f"{off['refused']}/{off['questions']} | {lat['p50']} / {lat['p95']} | "
        f"{entry.get('answer_chars_p50')} |"
    )
