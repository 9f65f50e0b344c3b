"""In-memory image datasets for the comparison examples: CIFAR-10 (through Paddle's loader),
scikit-learn's handwritten digits, and a folder of images with masks or generated shapes for
segmentation. Images are kept at their stored resolution as normalised float32 ``[N, 3, h, w]``;
resizing to a model's input happens per batch (:func:`to_input`)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple
from urllib.parse import urlparse

import numpy as np
import paddle
import paddle.nn.functional as F

__all__ = ["ArrayDataset", "DataUnavailable", "load_cifar10", "load_digits", "to_input",
           "augment", "crop_and_flip", "flip_and_resized_crop", "limit", "split"]

#: Per-channel statistics of the CIFAR-10 training set.
CIFAR10_MEAN = np.array([0.4914, 0.4822, 0.4465], dtype="float32")
CIFAR10_STD = np.array([0.2470, 0.2435, 0.2616], dtype="float32")


class DataUnavailable(RuntimeError):
    """A dataset could not be read or downloaded; the message says what to do."""


@dataclass
class ArrayDataset(paddle.io.Dataset):
    """Images ``[N, 3, h, w]`` float32 and labels: ``[N]`` class ids, or ``[N, h, w]`` masks."""

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    name: str

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.images)} images but "
                             f"{len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], self.labels[index]


def limit(data: ArrayDataset, count: Optional[int], seed: int = 0) -> ArrayDataset:
    """A random subset of ``count`` samples (all of them when ``count`` is None)."""
    if count is None or count >= len(data):
        return data
    if count < 1:
        raise ValueError(f"a dataset limit must be at least 1, got {count}")
    keep = np.sort(np.random.default_rng(seed).permutation(len(data))[:count])
    return ArrayDataset(data.images[keep], data.labels[keep], data.num_classes, data.name)


def _reachable(url: str, timeout: float = 5.0) -> bool:
    host = urlparse(url).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_cifar10(data_file: Optional[str] = None) -> Tuple[ArrayDataset, ArrayDataset]:
    """CIFAR-10 train and test sets through ``paddle.vision.datasets.Cifar10``.

    Args:
        data_file: a local ``cifar-10-python.tar.gz``. Without it Paddle's cached copy is used,
            or downloaded when the host can be reached.

    Raises:
        DataUnavailable: no file given and the download is not possible, or the file is not
            a CIFAR-10 archive.
    """
    from paddle.dataset.common import DATA_HOME
    from paddle.vision.datasets import cifar

    if data_file is not None:
        if not Path(data_file).is_file():
            raise DataUnavailable(f"--data-file {data_file}: no such file")
    else:
        cached = Path(DATA_HOME) / "cifar" / Path(urlparse(cifar.CIFAR10_URL).path).name
        if not cached.is_file() and not _reachable(cifar.CIFAR10_URL):
            raise DataUnavailable(
                f"CIFAR-10 is not in Paddle's cache ({cached}) and {cifar.CIFAR10_URL} cannot be "
                f"reached. Download cifar-10-python.tar.gz elsewhere and pass it with "
                f"--data-file PATH, or use --dataset digits to run offline.")
    splits = []
    for mode in ("train", "test"):
        try:
            dataset = cifar.Cifar10(data_file=data_file, mode=mode, download=data_file is None)
        except Exception as error:  # Paddle raises assorted errors for bad files/downloads
            raise DataUnavailable(f"could not read CIFAR-10 ({mode}) from "
                                  f"{data_file or 'the download'}: {error}. Pass a "
                                  f"cifar-10-python.tar.gz with --data-file.") from error
        if not dataset.data:
            raise DataUnavailable(f"{data_file}: no CIFAR-10 {mode} batches in the archive")
        images = np.stack([sample for sample, _ in dataset.data]).reshape(-1, 3, 32, 32)
        images = (images.astype("float32") / 255.0 - CIFAR10_MEAN[:, None, None]) \
            / CIFAR10_STD[:, None, None]
        labels = np.array([label for _, label in dataset.data], dtype="int64")
        splits.append(ArrayDataset(images, labels, 10, f"cifar10-{mode}"))
    return splits[0], splits[1]


def load_digits(test_fraction: float = 0.2,
                seed: int = 0) -> Tuple[ArrayDataset, ArrayDataset]:
    """scikit-learn's 1,797 handwritten digits (8x8, real scans, shipped with the package) as
    3-channel images in [-1, 1], split into train and test (80/20 by default), stratified
    by class; ``seed`` fixes the split (the comparison keeps it at 0 for every run)."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = (bunch.images.astype("float32") / 16.0 - 0.5) / 0.5
    images = np.repeat(images[:, None], 3, axis=1)
    labels = bunch.target.astype("int64")
    return split(ArrayDataset(images, labels, 10, "digits"), test_fraction, seed,
                 stratify=True)


def split(data: ArrayDataset, test_fraction: float, seed: int = 0,
          stratify: bool = False) -> Tuple[ArrayDataset, ArrayDataset]:
    """A random train/test split, named ``<name>-train`` and ``<name>-test``; with
    ``stratify`` (class labels) each class is split in the same proportion."""
    rng = np.random.default_rng(seed)
    if stratify:
        parts = [rng.permutation(np.flatnonzero(data.labels == k))
                 for k in np.unique(data.labels)]
        cuts = [int(round(len(p) * (1.0 - test_fraction))) for p in parts]
        train = np.sort(np.concatenate([p[:c] for p, c in zip(parts, cuts)]))
        test = np.sort(np.concatenate([p[c:] for p, c in zip(parts, cuts)]))
    else:
        order = rng.permutation(len(data))
        cut = max(1, int(round(len(data) * (1.0 - test_fraction))))
        train, test = order[:cut], order[cut:]
    if not len(train) or not len(test):
        raise ValueError(f"{len(data)} samples are too few to split into train and test")
    return tuple(ArrayDataset(data.images[part], data.labels[part], data.num_classes,
                              f"{data.name}-{kind}")
                 for part, kind in ((train, "train"), (test, "test")))


def augment(images: np.ndarray, labels: np.ndarray,
            rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Light augmentation of a batch: class labels ``[B]`` -> :func:`crop_and_flip` of the
    images; masks ``[B, h, w]`` -> :func:`flip_and_resized_crop` of images and masks."""
    if labels.ndim == 1:
        return crop_and_flip(images, rng), labels
    return flip_and_resized_crop(images, labels, rng)


def flip_and_resized_crop(images: np.ndarray, masks: np.ndarray, rng: np.random.Generator,
                          scale: Tuple[float, float] = (0.5, 1.0)
                          ) -> Tuple[np.ndarray, np.ndarray]:
    """Per image: a random crop of ``scale`` of the area (aspect ratio 3/4 to 4/3) resized
    back to ``h x w`` (bilinear for the image, nearest for the mask), and a horizontal flip
    with probability 1/2. ``[B, C, h, w]``, ``[B, h, w]`` in and out."""
    batch, _, height, width = images.shape
    out_images, out_masks = np.empty_like(images), np.empty_like(masks)
    for i in range(batch):
        area = rng.uniform(*scale) * height * width
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        crop_h = int(min(height, max(1, round(np.sqrt(area / ratio)))))
        crop_w = int(min(width, max(1, round(np.sqrt(area * ratio)))))
        top = int(rng.integers(0, height - crop_h + 1))
        left = int(rng.integers(0, width - crop_w + 1))
        rows = top + (np.arange(height) + 0.5) * crop_h / height - 0.5
        cols = left + (np.arange(width) + 0.5) * crop_w / width - 0.5
        nearest_r = np.clip(np.round(rows).astype(int), top, top + crop_h - 1)
        nearest_c = np.clip(np.round(cols).astype(int), left, left + crop_w - 1)
        r0 = np.clip(np.floor(rows).astype(int), top, top + crop_h - 1)
        c0 = np.clip(np.floor(cols).astype(int), left, left + crop_w - 1)
        r1, c1 = np.minimum(r0 + 1, top + crop_h - 1), np.minimum(c0 + 1, left + crop_w - 1)
        wr = np.clip(rows - r0, 0, 1)[:, None]
        wc = np.clip(cols - c0, 0, 1)[None, :]
        image = images[i]
        top_row = image[:, r0][:, :, c0] * (1 - wc) + image[:, r0][:, :, c1] * wc
        bottom_row = image[:, r1][:, :, c0] * (1 - wc) + image[:, r1][:, :, c1] * wc
        out_images[i] = top_row * (1 - wr) + bottom_row * wr
        out_masks[i] = masks[i][nearest_r][:, nearest_c]
        if rng.random() < 0.5:
            out_images[i], out_masks[i] = out_images[i][:, :, ::-1], out_masks[i][:, ::-1]
    return out_images, out_masks


def crop_and_flip(images: np.ndarray, rng: np.random.Generator,
                  pad: Optional[int] = None) -> np.ndarray:
    """Random crop after zero padding by ``pad`` (default: an eighth of the height, 4 on
    CIFAR's 32x32, 1 on the 8x8 digits) and random horizontal flip, per image:
    ``[B, C, h, w] -> [B, C, h, w]``."""
    batch, _, height, width = images.shape
    pad = max(1, height // 8) if pad is None else pad
    padded = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.empty_like(images)
    tops = rng.integers(0, 2 * pad + 1, batch)
    lefts = rng.integers(0, 2 * pad + 1, batch)
    flips = rng.random(batch) < 0.5
    for i in range(batch):
        crop = padded[i, :, tops[i]:tops[i] + height, lefts[i]:lefts[i] + width]
        out[i] = crop[:, :, ::-1] if flips[i] else crop
    return out


def to_input(images: np.ndarray, size: int) -> paddle.Tensor:
    """A batch as the model's input ``[B, 3, size, size]`` (bilinear resize when needed)."""
    x = paddle.to_tensor(images)
    if x.shape[2] != size or x.shape[3] != size:
        x = F.interpolate(x, size=[size, size], mode="bilinear", align_corners=False)
    return x
