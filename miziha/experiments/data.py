"""In-memory image datasets for the comparison examples: CIFAR-10 (through Paddle's loader),
scikit-learn's handwritten digits, 32x32 tiles of scikit-image's sample photographs
(:func:`load_photo_tiles`), and a folder of images with masks or generated shapes for
segmentation. Images are kept at their stored resolution as normalised float32 ``[N, 3, h, w]``;
resizing to a model's input happens per batch (:func:`to_input`)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple
from urllib.parse import urlparse

import numpy as np
import paddle
import paddle.nn.functional as F

__all__ = ["ArrayDataset", "DataUnavailable", "load_cifar10", "load_digits", "load_photo_tiles",
           "PHOTO_TILE_SOURCES", "photo_tiles", "photo_tile_card", "to_input",
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


#: The photographs of :func:`load_photo_tiles`, in class order: the ``skimage.data``
#: function (all ship inside the scikit-image wheel, no download) and the terms its
#: docstring states. Left out: ``moon`` (no terms stated), ``stereo_motorcycle`` (Middlebury
#: 2014, no terms stated), ``chelsea`` (the same photograph as ``cat``), and the images
#: fetched on first use (``eagle``, ``lily``, ...).
PHOTO_TILE_SOURCES: Tuple[Tuple[str, str], ...] = (
    ("astronaut", "NASA; public domain"),
    ("brick", "CC0 (CC0Textures Bricks25)"),
    ("camera", "CC0 (Lav Varshney)"),
    ("cat", "CC0 (Stefan van der Walt)"),
    ("coffee", "CC0 (Rachel Michetti; Pikolo Espresso Bar)"),
    ("coins", "no known copyright restrictions (Brooklyn Museum)"),
    ("grass", "CC0 (DeviantArt linolafett, Grass-01)"),
    ("gravel", "CC0 (CC0Textures Gravel04)"),
    ("hubble_deep_field", "NASA; public domain"),
    ("immunohistochemistry", "no known copyright restrictions (CMMI)"),
    ("retina", "CC0 (Mikael Haggstrom, Wikimedia Commons)"),
    ("rocket", "SpaceX; public domain"),
)


def _tile_corners(height: int, left: int, right: int, tile: int, stride: int
                  ) -> np.ndarray:
    """Top-left corners ``[n, 2]`` of the ``tile x tile`` squares with corners on a
    ``stride`` grid inside rows ``[0, height)`` and columns ``[left, right)``."""
    rows = np.arange(0, height - tile + 1, stride)
    cols = np.arange(left, right - tile + 1, stride)
    return np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)


def photo_tiles(photo: np.ndarray, train_share: float = 0.8, tile: int = 32,
                stride: int = 8, min_std: float = 0.02) -> Tuple[np.ndarray, np.ndarray]:
    """Train and test tiles of one greyscale photograph ``[H, W]`` in [0, 1].

    The photo is cut by columns: train tiles lie in the left ``train_share`` of the
    columns, test tiles start a whole tile to the right of that boundary, so no pixel (and
    no pixel's ``tile``-neighbourhood) is in both sets. Tiles are taken every ``stride``
    pixels (they overlap within a set, never across); tiles whose pixel standard deviation
    is below ``min_std`` (flat background: the black sky of the Hubble field, the retina's
    corners) are dropped.

    Returns: ``[n_train, tile, tile]`` and ``[n_test, tile, tile]`` float32.
    """
    height, width = photo.shape
    boundary = int(width * train_share)
    if boundary < tile or width - boundary - tile < tile or height < tile:
        raise ValueError(f"a {height}x{width} photo is too small for {tile}x{tile} tiles "
                         f"with a train share of {train_share}")
    parts = []
    for left, right in ((0, boundary), (boundary + tile, width)):
        corners = _tile_corners(height, left, right, tile, stride)
        tiles = np.stack([photo[r:r + tile, c:c + tile] for r, c in corners])
        parts.append(tiles[tiles.std(axis=(1, 2)) >= min_std].astype("float32"))
    return parts[0], parts[1]


def _grey_photo(name: str) -> Tuple[np.ndarray, bool]:
    """``skimage.data.<name>()`` as greyscale ``[H, W]`` in [0, 1] (colour photos by
    ``skimage.color.rgb2gray``), and whether it was in colour."""
    try:
        from skimage import color, data as samples
    except ImportError as error:
        raise DataUnavailable("the photo tiles need scikit-image: pip install "
                              "scikit-image (or the examples extra of miziha)") from error
    photo = getattr(samples, name)()
    if photo.ndim == 3:
        return color.rgb2gray(photo), True
    return photo / 255.0, False


def photo_tile_card() -> List[dict]:
    """Per photograph of :data:`PHOTO_TILE_SOURCES`, in class order: its name, size,
    whether it was in colour, licence, and the train and test tiles :func:`photo_tiles`
    cuts from it (before :func:`load_photo_tiles` draws its share)."""
    card = []
    for label, (name, licence) in enumerate(PHOTO_TILE_SOURCES):
        photo, colour = _grey_photo(name)
        train, test = photo_tiles(photo)
        card.append({"class": label, "name": name, "size": list(photo.shape),
                     "colour": colour, "licence": licence, "train_tiles": len(train),
                     "test_tiles": len(test)})
    return card


def load_photo_tiles(train_per_class: int = 100, test_per_class: int = 30,
                     seed: int = 0) -> Tuple[ArrayDataset, ArrayDataset]:
    """Which photograph a 32x32 tile comes from: 12-way classification of tiles of the
    photographs that ship inside scikit-image (:data:`PHOTO_TILE_SOURCES`, class ``k`` is
    the ``k``-th), offline.

    Every photo is made greyscale (colour photos by ``skimage.color.rgb2gray``: luminance
    ``0.2125 R + 0.7154 G + 0.0721 B``; five of the twelve are greyscale already, so colour
    alone would split the classes in two) and scaled to [0, 1]; :func:`photo_tiles` cuts
    it into spatially separate train (left 80% of the columns) and test tiles (right of a
    one-tile gap). ``train_per_class`` and ``test_per_class`` tiles are drawn per photo
    without replacement (fixed by ``seed``). Tiles become ``[3, 32, 32]`` in [-1, 1] by
    repeating the grey channel, as :func:`load_digits` does. docs/leaderboard.md has the
    card (counts per class, licences).

    Raises:
        DataUnavailable: scikit-image is not installed.
        ValueError: a photo has fewer usable tiles than asked for.
    """
    rng = np.random.default_rng(seed)
    sets = {"train": ([], []), "test": ([], [])}
    for label, (name, _) in enumerate(PHOTO_TILE_SOURCES):
        for kind, tiles, count in zip(("train", "test"), photo_tiles(_grey_photo(name)[0]),
                                      (train_per_class, test_per_class)):
            if len(tiles) < count:
                raise ValueError(f"{name}: {len(tiles)} {kind} tiles, fewer than the "
                                 f"{count} asked for")
            chosen = tiles[np.sort(rng.choice(len(tiles), count, replace=False))]
            sets[kind][0].append(chosen)
            sets[kind][1].append(np.full(count, label, dtype="int64"))
    return tuple(ArrayDataset(np.repeat((np.concatenate(images)[:, None] - 0.5) / 0.5, 3,
                                        axis=1),
                              np.concatenate(labels), len(PHOTO_TILE_SOURCES),
                              f"photo-tiles-{kind}")
                 for kind, (images, labels) in sets.items())


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
