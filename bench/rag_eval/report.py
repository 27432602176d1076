"""Plain-text rendering of the `guru bench rag` report."""

from __future__ import annotations

from typing import Any

__all__ = ["render"]


def render(report: dict[str, Any]) -> str:
    lines: list[str] = []
    if "corpus" in report:
        c = report["corpus"]
        lines.append(
            f"corpus: {c['pages']} pages, {c.get('added', 0)} added, "
            f"{c.get('replaced', 0)} replaced, {c.get('unchanged', 0)} unchanged, "
            f"{c.get('error', 0)} errors, "
            f"{c['chunks_embedded']} chunks embedded in {c['seconds']} s"
        )
    if "eval" in report:
        e = report["eval"]
        lines.append(
            f"\nretrieval on {e['questions']} questions "
            f"({e['avoiding_title_words']} avoid the page-title words):"
        )
        lines.append(
            f"{'mode':<14} {'R@1':>6} {'R@5':>6} {'MRR@10':>7}   "
            f"{'(no-title R@1':>13} {'R@5':>6} {'MRR@10)':>8}  p50 ms"
        )
        modes = [m for m in ("vector", "text", "hybrid") if m in e]
        for mode in modes:
            m, s = e[mode], e[mode]["avoiding_title_words"]
            lines.append(
                f"{mode:<14} {m['recall@1']:>6.3f} {m['recall@5']:>6.3f} "
                f"{m['mrr@10']:>7.3f}   {s['recall@1']:>13.3f} {s['recall@5']:>6.3f} "
                f"{s['mrr@10']:>8.3f}  {m.get('latency_ms_p50', '')!s:>6}"
            )
        if "held_out_half" in e["vector"]:
            lines.append("held-out half (odd questions; fusion weights were chosen on the even):")
            for mode in modes:
                h = e[mode]["held_out_half"]
                lines.append(
                    f"{mode:<14} {h['recall@1']:>6.3f} {h['recall@5']:>6.3f} {h['mrr@10']:>7.3f}"
                )
        for mode, missed in e["misses_at_5"].items():
            if missed:
                lines.append(f"  {mode} misses @5: " + "; ".join(missed))
    for model, prompts in report.get("expansion", {}).items():
        for prompt, x in prompts.items():
            lines.extend(_expansion(model, prompt, x))
    if "floor" in report:
        f = report["floor"]
        lines.append(
            f"\nrelevance floor (current {f['current_floor']}): best cosine answerable "
            f"{f['answerable_best_sim']}, off-topic {f['offtopic_best_sim']}"
        )
        for floor, row in f["by_floor"].items():
            lines.append(
                f"  floor {floor}: answerable refused {row['answerable_refused']}, "
                f"off-topic passed {row['offtopic_passed']}"
            )
    if "ingest" in report:
        i = report["ingest"]
        lines.append(
            f"\ningest: {i['chunks']} chunks from {i['pages']} pages: ours "
            f"{i['ours_chunks_per_s']} chunks/s end to end (embed only "
            f"{i['ours_embed_chunks_per_s']}/s, {i.get('encoder_dtype', 'float32')}), "
            f"sentence-transformers fp32 encode {i['st_chunks_per_s']}/s -> ratio "
            f"{i['ratio_end_to_end']} (embed only {i['ratio_embed_only']}); medians of "
            f"{i.get('rounds', 1)} interleaved rounds, load average "
            f"{i.get('load_avg_1m', '?')}"
        )
    for lat in report.get("latency", []):
        lines.append(
            f"\nlatency at {lat['chunks']} chunks ({lat['guilds']} guilds, query guild "
            f"{lat['guild_chunks']} chunks): vector p50 {lat['vector_p50_ms']} ms, "
            f"p95 {lat['vector_p95_ms']} ms; hybrid p50 {lat['hybrid_p50_ms']} ms, "
            f"p95 {lat['hybrid_p95_ms']} ms; HNSW recall@10 {lat['recall@10']}"
        )
    return "\n".join(lines)


def _expansion(model: str, prompt: str, x: dict[str, Any]) -> list[str]:
    g, best = x["generation"], x["hybrid+expansion"]
    lines = [
        f"\nquery expansion with {model}, prompt {prompt!r}: generation p50 "
        f"{g['seconds_p50']} s, p95 {g['seconds_p95']} s, {g['tokens_mean']} tokens "
        f"(load average {g['load_avg_median']}); expanded hybrid search p50 "
        f"{g['search_ms_p50']} ms",
        f"{'mode':<30} {'R@1':>6} {'R@5':>6} {'MRR@10':>7}   held-out {'R@1':>6} "
        f"{'R@5':>6} {'MRR@10':>7}   tuning R@5",
    ]
    for mode in (
        "vector",
        "vector+hyde_mean",
        "vector+hyde_passage",
        "text",
        "text+query2doc",
        "hybrid",
        "hybrid+expansion_same_weights",
        "hybrid+expansion",
        "hybrid+expansion_as_ask",
    ):
        m, h = x[mode], x[mode]["held_out_half"]
        lines.append(
            f"{mode:<30} {m['recall@1']:>6.3f} {m['recall@5']:>6.3f} "
            f"{m['mrr@10']:>7.3f}   {'':>8} {h['recall@1']:>6.3f} {h['recall@5']:>6.3f} "
            f"{h['mrr@10']:>7.3f}   {m['tuning_half']['recall@5']:>10.3f}"
        )
    lines.append("  hybrid+expansion_same_weights: each added list weighs as its plain one")
    lines.append(
        "  hybrid+expansion_as_ask: the passage's embedding, fused as /ask does with "
        "GURU_ASK_EXPAND (retrieve.EXPANDED_WEIGHTS)"
    )
    lines.append(
        f"  chosen on the even half: {best['variant']} embedding, weights {best['weights']}"
    )
    lines.append("  hybrid+expansion misses @5: " + "; ".join(best["misses_at_5"]))
    return lines
