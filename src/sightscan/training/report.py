"""The training report: one PNG with the loss curve, per-class AP and example detections."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from sightscan.detections import Detection
from sightscan.inference import draw_detections
from sightscan.training.evaluation import Metrics


def render_report(history: Sequence[dict[str, float]], metrics: Metrics,
                  examples: Sequence[tuple[Image.Image, list[Detection]]] = (),
                  title: str = "SightScan detector") -> bytes:
    """Render the report as PNG bytes (matplotlib Agg backend, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = list(examples)[:4]
    figure = Figure(figsize=(12, 7 if shown else 4), dpi=80)
    FigureCanvasAgg(figure)
    rows = 2 if shown else 1
    grid = figure.add_gridspec(rows, 4)
    loss_ax = figure.add_subplot(grid[0, :2])
    epochs = [h["epoch"] for h in history]
    for key in ("loss", "cls", "box", "mil"):
        values = [h.get(key, 0.0) for h in history]
        if any(values):
            loss_ax.plot(epochs, values, label=key)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss")
    loss_ax.legend(loc="upper right")
    loss_ax.set_title("loss")
    ap_ax = figure.add_subplot(grid[0, 2:])
    names = list(metrics.per_class_ap50)
    positions = range(len(names))
    ap_ax.barh([p + 0.2 for p in positions], [metrics.per_class_ap50[n] for n in names],
               height=0.4, label="AP@0.5")
    ap_ax.barh([p - 0.2 for p in positions], [metrics.per_class_ap50_95[n] for n in names],
               height=0.4, label="AP@0.5:0.95")
    ap_ax.set_yticks(list(positions), names, fontsize=8)
    ap_ax.set_xlim(0, 1)
    ap_ax.legend(loc="lower right", fontsize=8)
    clean = ("n/a" if metrics.negatives_clean_rate is None
             else f"{metrics.negatives_clean_rate:.2f}")
    ap_ax.set_title(f"mAP@0.5 {metrics.map50:.3f}  mAP@0.5:0.95 {metrics.map50_95:.3f}  "
                    f"top-1 {metrics.top1_accuracy:.2f}  negatives clean {clean}", fontsize=9)
    for k, (image, detections) in enumerate(shown):
        ax = figure.add_subplot(grid[1, k])
        ax.imshow(draw_detections(image, detections, debug=True))
        ax.set_axis_off()
    figure.suptitle(title)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
