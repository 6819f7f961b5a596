"""A tiny live plot of data loss and PSNR per step, painted with QPainter.

Cheap enough to repaint on every step (no matplotlib figure to rebuild), and readable in a
narrow dock: loss on a log scale (left axis, blue), PSNR in dB (right axis, orange), the step
on the horizontal axis, last values as text.
"""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

LOSS_COLOR = QColor(80, 160, 255)
PSNR_COLOR = QColor(255, 150, 40)


class LivePlot(QWidget):
    """Two series against the step index; `add(step, loss, psnr)`, `clear()`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loss: list[tuple[int, float]] = []
        self.psnr: list[tuple[int, float]] = []
        self.total = 0
        self.setMinimumHeight(80)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(120)
        self.setToolTip("data loss |Ax − y|² (blue, log scale) and PSNR vs reference "
                        "(orange, dB) per diffusion step")

    def clear(self, total: int = 0) -> None:
        self.loss.clear()
        self.psnr.clear()
        self.total = int(total)
        self.update()

    def add(self, step: int, loss: float | None, psnr: float | None, total: int = 0) -> None:
        self.total = max(self.total, int(total), step + 1)
        if loss is not None and math.isfinite(loss) and loss > 0:
            self.loss.append((step, math.log10(loss)))
        if psnr is not None and math.isfinite(psnr):
            self.psnr.append((step, float(psnr)))
        self.update()

    # -- painting ------------------------------------------------------------------------
    def _path(self, pts: list[tuple[int, float]],
              area: QRectF) -> tuple[QPainterPath, float, float]:
        ys = [v for _, v in pts]
        lo, hi = min(ys), max(ys)
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        n = max(self.total - 1, 1)
        path = QPainterPath()
        for k, (x, v) in enumerate(pts):
            px = area.left() + area.width() * x / n
            py = area.bottom() - area.height() * (v - lo) / (hi - lo)
            (path.moveTo if k == 0 else path.lineTo)(QPointF(px, py))
        return path, lo, hi

    def axis_labels(self) -> dict[str, list[str]]:
        """The tick labels drawn on each axis: 'x' (step), 'loss' (left), 'psnr' (right)."""
        out: dict[str, list[str]] = {"x": ["0", f"{max(self.total - 1, 0)}", "step"],
                                     "loss": [], "psnr": []}
        if self.loss:
            _, lo, hi = self._path(self.loss, QRectF(0, 0, 1, 1))
            out["loss"] = [f"{10 ** hi:.2g}", f"{10 ** lo:.2g}"]
        if self.psnr:
            _, lo, hi = self._path(self.psnr, QRectF(0, 0, 1, 1))
            out["psnr"] = [f"{hi:.1f}", f"{lo:.1f} dB"]
        return out

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        fm = p.fontMetrics()
        labels = self.axis_labels()
        left = max([fm.horizontalAdvance(t) for t in labels["loss"]] + [0]) + 6
        right = max([fm.horizontalAdvance(t) for t in labels["psnr"]] + [0]) + 6
        r = QRectF(self.rect()).adjusted(left, 16, -right, -4 - fm.height())
        grey = QColor(150, 150, 150)
        p.setPen(QPen(QColor(128, 128, 128, 120), 1))
        p.drawRect(r)
        # axes: step below, loss (log) on the left, PSNR on the right; min and max of each
        p.setPen(grey)
        base = r.bottom() + fm.ascent() + 2
        p.drawText(QPointF(r.left(), base), labels["x"][0])
        end = labels["x"][1]
        p.drawText(QPointF(r.right() - fm.horizontalAdvance(end), base), end)
        mid = labels["x"][2]
        p.drawText(QPointF(r.center().x() - fm.horizontalAdvance(mid) / 2, base), mid)
        for series, color, x_of in (("loss", LOSS_COLOR, lambda t: r.left() - 3 - fm.horizontalAdvance(t)),
                                    ("psnr", PSNR_COLOR, lambda t: r.right() + 3)):
            if labels[series]:
                hi_t, lo_t = labels[series]
                p.setPen(color)
                p.drawText(QPointF(x_of(hi_t), r.top() + fm.ascent()), hi_t)
                p.drawText(QPointF(x_of(lo_t), r.bottom()), lo_t)
        text = []
        if len(self.loss) >= 1:
            path, _, _ = self._path(self.loss, r)
            p.setPen(QPen(LOSS_COLOR, 1.6))
            p.drawPath(path)
            text.append((LOSS_COLOR, f"loss {10 ** self.loss[-1][1]:.3g}"))
        if len(self.psnr) >= 1:
            path, _, _ = self._path(self.psnr, r)
            p.setPen(QPen(PSNR_COLOR, 1.6))
            p.drawPath(path)
            text.append((PSNR_COLOR, f"PSNR {self.psnr[-1][1]:.2f} dB (slice mean)"))
        if not text:
            p.setPen(QColor(150, 150, 150))
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, "loss / PSNR per step")
        x = 6.0
        for color, s in text:
            p.setPen(color)
            p.drawText(QPointF(x, 12), s)
            x += p.fontMetrics().horizontalAdvance(s) + 12
        p.end()
