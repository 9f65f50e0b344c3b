"""The leaderboard: the photo-tile dataset (spatially separate train and test tiles, the
card's counts), the model list read from MIXERS, and a tiny run (two models, one seed, two
steps) that resumes, adds a model without retraining the first, and renders its outputs.
Offline: the photographs ship inside scikit-image."""

import json

import numpy as np
import pytest

from conftest import load_example
from miziha import MIXERS
from miziha.experiments import leaderboard
from miziha.experiments.data import PHOTO_TILE_SOURCES, load_photo_tiles, photo_tiles
from miziha.models import list_models

pytest.importorskip("skimage")


def test_train_and_test_tiles_come_from_separate_columns():
    height, width, tile = 70, 400, 32
    photo = np.tile(np.arange(width, dtype=np.float64), (height, 1)) / width  # the column
    train, test = photo_tiles(photo, train_share=0.8, tile=tile, stride=8)
    boundary = int(width * 0.8)
    train_cols, test_cols = (np.rint(tiles * width).astype(int) for tiles in (train, test))
    assert train.shape[1:] == test.shape[1:] == (tile, tile)
    assert train_cols.max() < boundary  # every train pixel left of the boundary
    assert test_cols.min() >= boundary + tile  # a whole tile of gap before the test tiles
    assert len(train) == len(range(0, height - tile + 1, 8)) * len(range(0, boundary - tile + 1, 8))
    assert len(test) == len(range(0, height - tile + 1, 8)) * 3
    part_flat = np.where(np.arange(width) < 100, photo, 0.5)  # flat right of column 100
    kept, none = photo_tiles(part_flat, tile=tile, stride=8)
    assert 0 < len(kept) < len(train) and len(none) == 0  # flat tiles are dropped
    assert (kept.std(axis=(1, 2)) >= 0.02).all()
    with pytest.raises(ValueError, match="too small"):
        photo_tiles(photo[:, :100], tile=tile)


def test_photo_tiles_dataset_card():
    train, test = load_photo_tiles(train_per_class=20, test_per_class=5, seed=3)
    classes = len(PHOTO_TILE_SOURCES)
    assert classes == 12 and train.num_classes == classes
    assert train.images.shape == (20 * classes, 3, 32, 32)
    assert test.images.shape == (5 * classes, 3, 32, 32)
    assert train.images.dtype == np.float32
    assert (np.bincount(train.labels) == 20).all() and (np.bincount(test.labels) == 5).all()
    assert -1.0 <= train.images.min() and train.images.max() <= 1.0
    np.testing.assert_array_equal(train.images[:, 0], train.images[:, 2])  # grey, 3 channels
    again, _ = load_photo_tiles(train_per_class=20, test_per_class=5, seed=3)
    np.testing.assert_array_equal(train.images, again.images)
    flat_train = train.images[:, 0].reshape(len(train), -1)
    flat_test = test.images[:, 0].reshape(len(test), -1)
    assert not (flat_test[:, None, :] == flat_train[None, :, :]).all(-1).any()
    with pytest.raises(ValueError, match="coins: .* fewer than"):
        load_photo_tiles(train_per_class=10, test_per_class=100)


def test_models_are_read_from_mixers():
    registered = set(list_models(task="classification"))
    expected = ["resnet50@32"] + [f"{m}_resnet50@32" for m in MIXERS
                                  if f"{m}_resnet50" in registered]
    assert leaderboard.leaderboard_models() == expected
    assert len(expected) == 1 + len(MIXERS)


def test_tiny_run_resumes_adds_a_model_and_renders(tmp_path):
    run, log = tmp_path / "run", []
    options = dict(tasks=["tiles"], seeds=1, limit_train=16, limit_test=8,
                   overrides={"batch_size": 8, "warmup_steps": 0}, timing_rounds=2,
                   log=log.append)
    leaderboard.run_leaderboard(run, models=["resnet50@32"], **options)
    timing = leaderboard.read_step_times(run)
    assert list(timing["models"]) == ["resnet50@32"] and timing["rounds"] == 2
    assert len(timing["models"]["resnet50@32"]["times_ms"]) == 2
    first = run / "cells" / "tiles" / "resnet50@32-seed0.json"
    record = json.loads(first.read_text())
    assert record["epochs_done"] == 1 and record["timed_steps"] == 2
    assert record["train_images"] == 16 and record["test_images"] == 8
    assert record["peak_memory_mb"] > 0 and record["params"] > 0 and record["macs"] > 0
    stamp = first.stat().st_mtime_ns
    cells = leaderboard.run_leaderboard(run, models=["resnet50@32", "swin_resnet50@32"],
                                        **options)
    assert "1 already done, 1 to train" in log[4]  # the second run's first line
    assert first.stat().st_mtime_ns == stamp  # the first model was not retrained
    assert sorted(r["model"] for r in cells["tiles"]) == ["resnet50@32", "swin_resnet50@32"]
    timing = leaderboard.read_step_times(run)  # timed again: a model was added
    assert sorted(timing["models"]) == ["resnet50@32", "swin_resnet50@32"]
    steps = run / "steps.json"
    stamp = steps.stat().st_mtime_ns
    leaderboard.run_leaderboard(run, models=["resnet50@32", "swin_resnet50@32"], **options)
    assert steps.stat().st_mtime_ns == stamp  # nothing to train, nothing to time

    docs = tmp_path / "docs"
    example = load_example("leaderboard")
    argv = ["--output", str(run), "--tasks", "tiles", "--models", "resnet50@32",
            "swin_resnet50@32", "--markdown", str(docs / "lb.md"), "--results",
            str(docs / "lb.json"), "--figure", str(docs / "lb.png"), "--render-only"]
    assert example.main(argv + ["--seeds", "1"]) == 0
    text = (docs / "lb.md").read_text()
    assert "**Status: complete.**" in text
    swin_ms, resnet_ms = (timing["models"][m]["train_ms_per_batch"]
                          for m in ("swin_resnet50@32", "resnet50@32"))
    assert f"| {swin_ms:.0f} |" in text and "timed in one process, interleaved" in text
    ratio = swin_ms / resnet_ms
    assert f"; {ratio:.1f}x the time per batch" in text  # the verdict's ratio is the timing's
    assert json.loads((docs / "lb.json").read_text())["step_timing_used"] is True
    partial = dict(timing, models={"resnet50@32": timing["models"]["resnet50@32"]})
    (run / "steps.json").write_text(json.dumps(partial))
    assert example.main(argv + ["--seeds", "1"]) == 0  # a timing without swin: not used
    text = (docs / "lb.md").read_text()
    assert "does not cover every model here" in text and f"| {swin_ms:.0f} |" not in text
    cell_ratio = (json.loads((run / "cells" / "tiles" / "swin_resnet50@32-seed0.json")
                             .read_text())["train_ms_per_batch"] / record["train_ms_per_batch"])
    assert f"; {cell_ratio:.1f}x the time per batch" in text
    assert json.loads((docs / "lb.json").read_text())["step_timing_used"] is False
    (run / "steps.json").write_text(json.dumps(timing))
    assert "swin_resnet50@32 - resnet50@32:" in text and "1 seed" in text
    assert "compute thread" in text and "load average" in text
    assert (docs / "lb.png").stat().st_size > 1000
    assert example.main(argv + ["--seeds", "2"]) == 0  # the second seeds are missing
    text = (docs / "lb.md").read_text()
    assert "**Status: incomplete" in text and "| resnet50@32 | 1/2 |" in text
    results = json.loads((docs / "lb.json").read_text())
    assert results["complete"] is False and isinstance(results["shared_machine"], bool)
    assert results["step_timing"]["rounds"] == 2
    assert results["cells_done"]["tiles"] == {"resnet50@32": [0], "swin_resnet50@32": [0]}
    with pytest.raises(ValueError, match="tasks must be among"):
        leaderboard.run_leaderboard(run, tasks=["nope"])
    for bad in (-1, True):
        with pytest.raises(ValueError, match=f"timing_rounds must be an int >= 0, got {bad}"):
            leaderboard.run_leaderboard(run, timing_rounds=bad)
