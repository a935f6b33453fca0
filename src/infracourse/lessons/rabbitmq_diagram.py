"""Draw RabbitMQ exchanges, queues and the bindings between them, as the broker reports them (plotting only:
the lesson declares the topology itself)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def binding_label(binding: Mapping) -> str:
    """A binding's routing key, or for a headers exchange its header arguments."""
    arguments = {k: v for k, v in (binding.get("arguments") or {}).items()}
    if arguments:
        return ", ".join(f"{k}={v}" for k, v in sorted(arguments.items()))
    return binding.get("routing_key") or "(any)"


def draw_bindings(
    bindings: Sequence[Mapping], exchange_types: Mapping[str, str], strip: str = "", title: str = ""
) -> Figure:
    """Exchanges on the left (with their type), queues on the right, one labelled arrow per binding.

    BINDINGS are dicts with source, destination and routing_key/arguments (the management API's shape);
    STRIP is a name prefix (the notebook's namespace) left out of the labels.
    """
    short = lambda name: name[len(strip):] if strip and name.startswith(strip) else name  # noqa: E731
    exchanges = sorted({b["source"] for b in bindings})
    # queues grouped under the first exchange that binds them, so arrows do not cross
    queues: list[str] = []
    for exchange in exchanges:
        queues += sorted({b["destination"] for b in bindings if b["source"] == exchange} - set(queues))
    rows = len(queues)
    fig, ax = plt.subplots(figsize=(9, 0.6 * rows + 1))
    y_q = {name: rows - 1 - i for i, name in enumerate(queues)}
    y_ex = {
        e: sum(y_q[b["destination"]] for b in bindings if b["source"] == e)
        / sum(1 for b in bindings if b["source"] == e)
        for e in exchanges
    }
    box = {"boxstyle": "round,pad=0.4"}
    for name, y in y_ex.items():
        ax.text(0, y, f"{short(name)}\n[{exchange_types.get(name, '?')}]", ha="right", va="center",
                bbox={**box, "fc": "#dde8f6"}, fontsize=9)
    for name, y in y_q.items():
        ax.text(1, y, short(name), ha="left", va="center", bbox={**box, "fc": "#e6f3df"}, fontsize=9)
    for b in bindings:
        y0, y1 = y_ex[b["source"]], y_q[b["destination"]]
        ax.annotate("", xy=(0.98, y1), xytext=(0.02, y0), arrowprops={"arrowstyle": "->", "color": "#555"})
        ax.text(0.62, y0 + 0.62 * (y1 - y0), binding_label(b), fontsize=8, ha="center", va="center",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"})
    ax.set_xlim(-0.45, 1.4)
    ax.set_ylim(-0.7, rows - 0.3)
    ax.axis("off")
    ax.set_title(title or "Exchanges → bindings → queues")
    fig.tight_layout()
    return fig
