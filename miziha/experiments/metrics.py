"""Evaluation metrics as sums, so that shards evaluated by several processes add up exactly."""

from __future__ import annotations

from typing import Dict

import numpy as np
import paddle
import paddle.nn.functional as F

__all__ = ["ClassificationMetrics", "SegmentationMetrics", "smoothed_cross_entropy",
           "dice_loss"]


def dice_loss(logits: paddle.Tensor, labels: paddle.Tensor, smooth: float = 1e-5
              ) -> paddle.Tensor:
    """Soft Dice loss as Swin-Unet computes it: softmax over the classes of ``logits``
    ``[B, K, H, W]``, per class ``1 - (2 sum(p y) + s) / (sum(p^2) + sum(y^2) + s)`` over
    the batch with one-hot ``labels`` ``[B, H, W]``, averaged over the K classes."""
    probabilities = F.softmax(logits, axis=1)
    target = F.one_hot(labels, logits.shape[1]).transpose([0, 3, 1, 2]).astype(logits.dtype)
    axes = [0, 2, 3]
    intersection = (probabilities * target).sum(axis=axes)
    sums = (probabilities * probabilities).sum(axis=axes) + (target * target).sum(axis=axes)
    return (1.0 - (2.0 * intersection + smooth) / (sums + smooth)).mean()


def smoothed_cross_entropy(logits: paddle.Tensor, labels: paddle.Tensor, smoothing: float,
                           axis: int) -> paddle.Tensor:
    """Mean cross-entropy against ``(1 - smoothing)`` on the true class plus ``smoothing``
    spread evenly over all classes (PyTorch's ``label_smoothing``); ``labels`` has a size-1
    class axis. By hand: Paddle 3.3's ``F.cross_entropy(label_smoothing=...)`` has no CPU
    kernel for integer labels (``label_smooth`` int64 not registered)."""
    hard = F.cross_entropy(logits, labels, axis=axis)
    if not smoothing:
        return hard
    uniform = -F.log_softmax(logits, axis=axis).mean(axis=axis).mean()
    return (1.0 - smoothing) * hard + smoothing * uniform


class ClassificationMetrics:
    """Loss, top-1 and top-5 accuracy over logits ``[B, K]`` and labels ``[B]``."""

    primary = "top1"

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.sums = np.zeros(4)  # loss sum, top-1 hits, top-5 hits, samples

    @staticmethod
    def loss(logits: paddle.Tensor, labels: paddle.Tensor,
             label_smoothing: float = 0.0) -> paddle.Tensor:
        return smoothed_cross_entropy(logits, labels.reshape([-1, 1]), label_smoothing, -1)

    @classmethod
    def training_loss(cls, label_smoothing: float = 0.0, loss: str = "ce"):
        """``(logits, labels) -> loss`` for training: cross-entropy, smoothed."""
        if loss != "ce":
            raise ValueError(f"classification trains with loss 'ce', got {loss!r}")
        return lambda logits, labels: cls.loss(logits, labels, label_smoothing)

    def update(self, logits: paddle.Tensor, labels: paddle.Tensor) -> None:
        logits = logits.astype("float32")
        k = min(5, self.num_classes)
        top = paddle.topk(logits, k, axis=1)[1].numpy()
        truth = labels.numpy().reshape(-1, 1)
        loss = F.cross_entropy(logits, labels.reshape([-1, 1]), reduction="sum").item()
        self.sums += [loss, (top[:, :1] == truth).sum(), (top == truth).any(1).sum(), len(truth)]

    def result(self) -> Dict[str, float]:
        loss, top1, top5, count = self.sums
        count = max(count, 1)
        return {"loss": loss / count, "top1": top1 / count, "top5": top5 / count}


class SegmentationMetrics:
    """Loss, pixel accuracy and mean IoU over logits ``[B, K, H, W]`` and masks ``[B, H, W]``.

    The IoU mean is over the classes that occur in the masks or the predictions; each of
    those classes' IoU is reported as ``iou_class<k>``.
    """

    primary = "miou"

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        # loss sum, pixels, then the confusion matrix (truth x prediction), flattened
        self.sums = np.zeros(2 + num_classes * num_classes)

    @staticmethod
    def loss(logits: paddle.Tensor, labels: paddle.Tensor,
             label_smoothing: float = 0.0) -> paddle.Tensor:
        return smoothed_cross_entropy(logits, labels.unsqueeze(1), label_smoothing, 1)

    @classmethod
    def training_loss(cls, label_smoothing: float = 0.0, loss: str = "ce"):
        """``(logits, masks) -> loss`` for training: cross-entropy (smoothed), or
        ``0.4 * CE + 0.6 * Dice`` (``"ce+dice"``, Swin-Unet's)."""
        if loss == "ce":
            return lambda logits, labels: cls.loss(logits, labels, label_smoothing)
        return lambda logits, labels: (0.4 * cls.loss(logits, labels, label_smoothing)
                                       + 0.6 * dice_loss(logits, labels))

    def update(self, logits: paddle.Tensor, labels: paddle.Tensor) -> None:
        logits = logits.astype("float32")
        k = self.num_classes
        prediction = logits.argmax(axis=1).numpy().ravel()
        truth = labels.numpy().ravel()
        loss = F.cross_entropy(logits, labels.unsqueeze(1), axis=1, reduction="sum").item()
        self.sums[0] += loss
        self.sums[1] += truth.size
        self.sums[2:] += np.bincount(truth * k + prediction, minlength=k * k)

    def result(self) -> Dict[str, float]:
        k = self.num_classes
        confusion = self.sums[2:].reshape(k, k)
        pixels = max(self.sums[1], 1)
        union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
        present = union > 0
        iou = np.diag(confusion)[present] / union[present]
        per_class = {f"iou_class{k}": float(v)
                     for k, v in zip(np.flatnonzero(present), iou)}
        return {"loss": self.sums[0] / pixels,
                "pixel_accuracy": np.trace(confusion) / pixels,
                "miou": float(iou.mean()) if iou.size else 0.0, **per_class}
