"""seg-folder: tiny fixtures written here, and the real ISBI 2012 membranes in ../shared/data."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imbench.benchmarks.contract.errors import UsageError
from imbench.data_recipes.segmentation import SEG_SOURCES, load_segset
from imbench.data_recipes.segmentation.recipes import apply_seg_recipe

MEMBRANE = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012-membrane"


def write_folder(root: Path, n: int = 6, classes: dict | None = None, values=(0, 128, 255), size=(12, 16)) -> Path:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(root / "images" / f"im{i}.png")
        mask = np.full(size, values[0], dtype=np.uint8)
        mask[: size[0] // 2, : size[1] // 2] = values[1]
        mask[-2:, -3:] = values[2]
        Image.fromarray(mask).save(root / "masks" / f"im{i}.png")
    if classes is not None:
        (root / "classes.json").write_text(json.dumps(classes))
    return root


def test_classes_json_maps_values_and_null_is_void(tmp_path):
    root = write_folder(tmp_path / "d", classes={"0": "background", "128": "thing", "255": None})
    src = load_segset("seg-folder", data_root=root)
    assert src.train.class_names == ["background", "thing"] and src.info["class_source"] == "classes.json"
    mask = src.train.masks[0]
    assert set(mask.unique().tolist()) == {0, 1, 255} and src.train.ignore_index == 255
    assert mask[0, 0] == 1 and mask[-1, -1] == 255 and mask[-1, 0] == 0
    assert src.info["split"] == {"kind": "seeded", "seed": 0, "test_fraction": 0.2}
    assert len(src.train) + len(src.test) == 6
    per_image = [12 * 16 - 6 * 8 - 6, 6 * 8]
    assert src.train.pixel_counts() == [per_image[0] * len(src.train), per_image[1] * len(src.train)]
    assert "seg-folder" in SEG_SOURCES


def test_without_classes_json_values_are_the_classes_and_lists_give_the_split(tmp_path):
    root = write_folder(tmp_path / "d", values=(0, 1, 2))
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("im0\nim1\nim2\nim3\n")
    (root / "splits" / "test.txt").write_text("im4\nim5\n")
    src = load_segset("seg-folder", data_root=root)
    assert src.train.class_names == ["0", "1", "2"] and src.info["split"] == "official"
    assert src.train.ids == ["im0", "im1", "im2", "im3"] and src.test.ids == ["im4", "im5"]


def test_image_size_resizes_masks_with_nearest(tmp_path):
    root = write_folder(tmp_path / "d", values=(0, 1, 2), size=(12, 16))
    src = load_segset("seg-folder", data_root=root, image_size=32)
    img, mask = src.train.images[0], src.train.masks[0]
    assert tuple(img.shape[1:]) == (24, 32) == tuple(mask.shape)
    assert set(mask.unique().tolist()) <= {0, 1, 2} and mask.dtype == torch.int64


def test_errors_are_one_line(tmp_path):
    root = write_folder(tmp_path / "bad", classes={"0": "a", "128": "b"})  # 255 is not mapped
    with pytest.raises(UsageError, match="mask value 255 is not a label") as err:
        load_segset("seg-folder", data_root=root)
    assert "\n" not in str(err.value)
    root = write_folder(tmp_path / "missing")
    (root / "masks" / "im3.png").unlink()
    with pytest.raises(UsageError, match="has no mask"):
        load_segset("seg-folder", data_root=root)
    with pytest.raises(UsageError, match="needs --data-root"):
        load_segset("seg-folder")
    with pytest.raises(UsageError, match="does not exist"):
        load_segset("seg-folder", data_root=tmp_path / "nowhere")


def test_value_255_without_classes_json_is_refused_not_made_void(tmp_path):
    """Binary 0/255 masks: 255 is the void label, so without classes.json the foreground would
    silently become void (a 256-class head trained on background alone)."""
    root = write_folder(tmp_path / "binary", values=(0, 255, 255))
    with pytest.raises(UsageError, match="write classes.json") as err:
        load_segset("seg-folder", data_root=root)
    assert "\n" not in str(err.value)
    (root / "classes.json").write_text(json.dumps({"0": "background", "255": "foreground"}))
    src = load_segset("seg-folder", data_root=root)
    assert src.train.class_names == ["background", "foreground"]
    assert src.train.pixel_counts()[1] == (6 * 8 + 6) * len(src.train)  # no pixel lost to void
    (root / "classes.json").write_text(json.dumps({str(v): f"c{v}" for v in range(256)}))
    with pytest.raises(UsageError, match="256 classes; at most 255"):
        load_segset("seg-folder", data_root=root)


def test_natural_minority_ignores_classes_without_training_pixels(tmp_path):
    root = write_folder(tmp_path / "gap", values=(0, 1, 3))  # class 2 never occurs
    src = load_segset("seg-folder", data_root=root)
    imb = apply_seg_recipe(src, "natural", {}, 0)
    n = len(src.train)
    assert imb.counts == [(12 * 16 - 6 * 8 - 6) * n, 6 * 8 * n, 0, 6 * n]
    assert imb.minority == [3]  # below sqrt(138 * 6) per image; with the empty class the cut would be 0
    assert imb.info["absent_classes"] == [2]


@pytest.mark.skipif(not MEMBRANE.exists(), reason="../shared/data/isbi2012-membrane is not beside the checkout")
def test_real_isbi2012_membranes_are_a_seg_folder():
    src = load_segset("seg-folder", data_root=MEMBRANE)
    assert src.train.class_names == ["membrane", "cell"] and len(src.train) + len(src.test) == 30
    counts = np.array(src.train.pixel_counts()) + np.array(src.test.pixel_counts())
    share = counts[0] / counts.sum()
    assert 0.18 < share < 0.26  # membrane is about 22 % of the pixels
    assert tuple(src.train.masks[0].shape) == (512, 512)


def test_split_lists_must_not_overlap(tmp_path):
    root = write_folder(tmp_path / "d", values=(0, 1, 2))
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("im0\nim1\nim2\n")
    (root / "splits" / "test.txt").write_text("im2\nim3\n")
    with pytest.raises(UsageError, match="'im2' is in both train.txt and test.txt"):
        load_segset("seg-folder", data_root=root)


def test_a_negative_mask_value_is_refused_not_wrapped(tmp_path):
    """A 32-bit mask can hold -1; indexing the value table with it would read the table's last
    entry (a valid class) without a word."""
    root = write_folder(tmp_path / "neg", values=(0, 1, 2))
    mask = np.zeros((12, 16), dtype=np.int32)
    mask[0, 0] = -1
    (root / "masks" / "im2.png").unlink()
    Image.fromarray(mask, mode="I").save(root / "masks" / "im2.tif")
    with pytest.raises(UsageError, match="mask value -1 is not a label") as err:
        load_segset("seg-folder", data_root=root)
    assert "\n" not in str(err.value)


def test_label_maps_are_resized_with_pixel_centres_aligned():
    """Downscaling by 3 takes the middle source pixel of each block (NEAREST_EXACT); torch's
    plain nearest took the first, shifting the map by a source pixel against the image."""
    from imbench.data_recipes.segmentation.layout import resize_pair

    mask = torch.tensor([[0, 1, 0, 2, 1, 2]] * 6)
    img = torch.zeros((1, 6, 6), dtype=torch.uint8)
    _, small = resize_pair(img, mask, 2)
    assert small.tolist() == [[1, 1], [1, 1]]
