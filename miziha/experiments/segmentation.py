"""UNet vs SwinUNet segmentation: data (a folder of images and masks, or generated shapes),
training through the shared trainer, and a PNG of predictions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import paddle

from ..models import create_model, list_models
from .compare import protocol, takes_droppath
from .data import ArrayDataset, limit, split
from .metrics import SegmentationMetrics
from .report import run_metadata, write_results
from .runtime import current_runtime
from .trainer import TrainConfig, load_trained, train_model

__all__ = ["make_shapes", "load_segmentation_folder", "SegmentationOptions",
           "run_segmentation", "plot_predictions", "SHAPE_CLASSES"]

#: Classes of the generated dataset, by mask value.
SHAPE_CLASSES = ("background", "disc", "square", "triangle")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def make_shapes(count: int, size: int = 64, seed: int = 0) -> ArrayDataset:
    """Synthetic segmentation data: 1-3 discs, squares and triangles of random colour and
    size on a noisy background, with per-pixel class masks (see :data:`SHAPE_CLASSES`)."""
    if count < 1 or size < 8:
        raise ValueError(f"need count >= 1 and size >= 8, got count={count}, size={size}")
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    images = np.empty((count, 3, size, size), dtype="float32")
    masks = np.zeros((count, size, size), dtype="int64")
    for n in range(count):
        image = rng.normal(0.0, 0.15, (3, size, size)) + rng.uniform(-0.3, 0.3, (3, 1, 1))
        for _ in range(rng.integers(1, 4)):
            kind = int(rng.integers(1, 4))
            radius = rng.uniform(0.1, 0.25) * size
            cy, cx = rng.uniform(radius, size - radius, 2)
            if kind == 1:
                inside = (rows - cy) ** 2 + (cols - cx) ** 2 <= radius ** 2
            elif kind == 2:
                inside = (abs(rows - cy) <= radius) & (abs(cols - cx) <= radius)
            else:  # apex up: below the apex, within the widening sides
                inside = (rows <= cy + radius) & \
                    (abs(cols - cx) <= (rows - (cy - radius)) / 2)
            image[:, inside] = rng.uniform(-1.0, 1.0, (3, 1))
            masks[n][inside] = kind
        images[n] = image
    return ArrayDataset(images, masks, len(SHAPE_CLASSES), "shapes (synthetic)")


def load_segmentation_folder(folder: str, size: int,
                             num_classes: Optional[int] = None) -> ArrayDataset:
    """``folder/images/*`` with ``folder/masks/<same stem>.png`` (class index per pixel),
    resized to ``size`` x ``size`` (bilinear for images, nearest for masks)."""
    from PIL import Image

    root = Path(folder)
    image_files = sorted(p for p in (root / "images").glob("*")
                         if p.suffix.lower() in IMAGE_SUFFIXES)
    if not image_files:
        raise ValueError(f"{root / 'images'}: no images ({', '.join(IMAGE_SUFFIXES)})")
    images, masks = [], []
    for path in image_files:
        mask_path = root / "masks" / f"{path.stem}.png"
        if not mask_path.is_file():
            raise ValueError(f"{path.name} has no mask: expected {mask_path}")
        try:
            image = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
            mask = Image.open(mask_path)
        except OSError as error:  # PIL's UnidentifiedImageError is an OSError
            raise ValueError(f"cannot read {path.name} or its mask: {error}") from error
        if mask.mode not in ("L", "P", "I"):
            raise ValueError(f"{mask_path}: masks hold one class index per pixel (mode L or P)"
                             f", got mode {mask.mode}")
        images.append((np.asarray(image, dtype="float32").transpose(2, 0, 1) / 255 - 0.5) / 0.5)
        masks.append(np.asarray(mask.resize((size, size), Image.NEAREST), dtype="int64"))
    labels = np.stack(masks)
    classes = int(labels.max()) + 1 if num_classes is None else num_classes
    if labels.max() >= classes:
        raise ValueError(f"masks hold class {labels.max()}, but num_classes is {classes}")
    return ArrayDataset(np.stack(images), labels, classes, root.name)


#: The models the example compares by default.
DEFAULT_MODELS = ("unet", "swin_unet")


@dataclass
class SegmentationOptions:
    """Data, models (segmentation names of the registry) and protocol of the comparison."""

    models: Sequence[str] = DEFAULT_MODELS
    recipe: str = "reference"
    data_dir: Optional[str] = None
    size: int = 48
    samples: int = 200  # generated samples (without data_dir)
    num_classes: Optional[int] = None
    widths: Sequence[int] = (16, 32, 64, 128)
    window_size: int = 7
    limit_train: Optional[int] = None
    limit_test: Optional[int] = None
    output: Path = Path("runs/swin_unet_segmentation")
    resume: bool = False
    overwrite: bool = False
    config: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=5, batch_size=8, lr=0.05))

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        known = list_models(task="segmentation")
        # A classification name with a segmentation twin (hrnet_w18 -> hrnet_w18_seg).
        self.models = [m if m in known or f"{m}_seg" not in known else f"{m}_seg"
                       for m in self.models]
        unknown = [m for m in self.models if m not in known]
        if unknown or not self.models:
            raise ValueError(f"models must be segmentation models of the registry "
                             f"({', '.join(known)}), got {list(self.models)}")


def build_segmentation_model(name: str, num_classes: int,
                             options: SegmentationOptions) -> paddle.nn.Layer:
    """``name`` from the registry: UNets get ``widths``, Swin ones ``window_size``, models with
    mixer blocks the protocol's stochastic depth."""
    kwargs = {"droppath": options.config.droppath} \
        if options.config.droppath and takes_droppath(name) else {}
    if name.endswith("unet"):
        kwargs["widths"] = options.widths
    if name.startswith("swin_"):
        kwargs["window_size"] = options.window_size
    return create_model(name, num_classes=num_classes, **kwargs)


def plot_predictions(path: Path, data: ArrayDataset, models: Sequence[Tuple[str, object]],
                     count: int = 4) -> None:
    """PNG: per sample a row of input, ground truth and each model's prediction."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = min(count, len(data))
    x = paddle.to_tensor(data.images[:count])
    predictions = []
    for _, model in models:
        model.eval()
        with paddle.no_grad():
            predictions.append(model(x).argmax(axis=1).numpy())
    columns = 2 + len(models)
    figure, axes = plt.subplots(count, columns, figsize=(2.4 * columns, 2.4 * count),
                                squeeze=False)
    titles = ["input", "ground truth"] + [name for name, _ in models]
    for row in range(count):
        image = np.clip(data.images[row].transpose(1, 2, 0) * 0.5 + 0.5, 0, 1)
        panels = [image, data.labels[row]] + [p[row] for p in predictions]
        for col, panel in enumerate(panels):
            axis = axes[row][col]
            axis.imshow(panel, **({} if col == 0 else dict(vmin=0, vmax=data.num_classes - 1,
                                                            cmap="tab10",
                                                            interpolation="nearest")))
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(titles[col], fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def run_segmentation(options: SegmentationOptions,
                     log: Callable[[str], None] = print) -> Tuple[List[dict], str]:
    """Train and evaluate every model of ``options.models``, write results.json (with
    per-class IoU), results.md, comparison.png, predictions.png, VisualDL logs and
    checkpoints (main process)."""
    runtime = current_runtime(options.config.amp, log)
    say = log if runtime.is_main else (lambda _: None)
    seed = options.config.seed
    if options.data_dir:
        data = load_segmentation_folder(options.data_dir, options.size, options.num_classes)
    else:
        data = make_shapes(options.samples, options.size, seed)
    train, test = split(data, 0.2, seed)
    train, test = limit(train, options.limit_train, seed), limit(test, options.limit_test, seed)
    say(f"data: {data.name}, {len(train)} train / {len(test)} test images of "
        f"{options.size}x{options.size}, {data.num_classes} classes")
    builders = {name: (lambda name=name: build_segmentation_model(name, data.num_classes,
                                                                  options))
                for name in options.models}
    records = [train_model(name, build, train, test, SegmentationMetrics, options.config,
                           runtime, None, options.output, options.resume, options.overwrite,
                           say)
               for name, build in builders.items()]
    tables = ""
    if runtime.is_main:
        metadata = run_metadata(runtime, dataset=data.name, image_size=options.size,
                                train_images=len(train), test_images=len(test),
                                recipe=options.recipe, widths=list(options.widths),
                                **protocol(options.config))
        tables = write_results(options.output, records, [], metadata, task="segmentation",
                               title=f"Segmentation on {data.name}")
        trained = [(name, load_trained(build(), options.output, name))
                   for name, build in builders.items()]
        plot_predictions(options.output / "predictions.png", test, trained)
        say(tables)
        say(f"wrote {options.output}/results.json, results.md, comparison.png, "
            f"predictions.png; VisualDL: visualdl --logdir {options.output}/vdl")
    return records, tables
