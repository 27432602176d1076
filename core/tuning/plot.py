"""The loss curve of a run as a PNG (attached to the /tune reply and kept with the adapter)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["plot_losses"]


def plot_losses(
    path: str, train: Sequence[float], eval_before: float, eval_after: float, title: str
) -> str:
    """Write the per-step training loss and the eval loss before/after to `path`."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server; must precede pyplot
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    try:
        steps = range(1, len(train) + 1)
        ax.plot(steps, train, label="train loss (answer tokens)", color="tab:blue")
        last = max(len(train), 1)
        ax.scatter(
            [0, last],
            [eval_before, eval_after],
            color="tab:orange",
            zorder=3,
            label=f"eval loss {eval_before:.3f} → {eval_after:.3f}",
        )
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
