"""Real detection sources: tiny Pascal VOC and COCO folders, conversions, splits, sanitising, errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from imbench.benchmarks.contract.errors import UsageError
from imbench.data_recipes.imageset import Source
from imbench.data_recipes.scenes import SCENE_SOURCES, load_scenes
from imbench.data_recipes.scenes import coco as coco_mod  # noqa: F401  (registers "coco")
from imbench.data_recipes.scenes import voc as voc_mod  # registers "voc"
from imbench.data_recipes.sceneset import SceneSet
from imbench.data_recipes.sources._common import SourceSpec
from PIL import Image
from torchvision import tv_tensors

VOC = SCENE_SOURCES.get("voc").loader if "voc" in SCENE_SOURCES else None
COCO = SCENE_SOURCES.get("coco").loader if "coco" in SCENE_SOURCES else None


def usage_error(match: str, fn, *args, **kw) -> str:
    """Call ``fn``; it must raise a one-line UsageError whose message contains ``match``."""
    with pytest.raises(UsageError) as info:
        fn(*args, **kw)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert match in msg, msg
    return msg


def write_image(path: Path, h: int, w: int, seed: int, gray: bool = False) -> None:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w) if gray else (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def plain(boxes) -> list[list[float]]:
    return boxes.as_subclass(torch.Tensor).tolist()


def by_id(scenes: SceneSet, image_id: str) -> tuple[torch.Tensor, dict]:
    i = scenes.ids.index(image_id)
    return scenes.images[i], scenes.targets[i]


# ---------------------------------------------------------------- VOC writer
# (h, w, objects); an object is (name, xmin, ymin, xmax, ymax, difficult, truncated), 1-based inclusive
VOC_IMAGES = {
    "000001": (30, 40, [("dog", 1, 1, 40, 30, 0, 0), ("person", 5, 6, 14, 20, 1, 1)]),
    "000002": (40, 20, [("cat", 3, 5, 12, 24, 0, 0)]),
    "000003": (32, 32, [("dog", 10, 10, 45, 20, 0, 1)]),          # x beyond the image: clipped
    "000004": (32, 32, [("person", 10, 10, 9, 20, 0, 0)]),        # zero width: dropped, image emptied
    "000005": (24, 36, []),                                       # no objects at all
    "000006": (30, 30, [("cat", 2, 2, 10, 10, 0, 0), ("cat", 12, 12, 20, 28, 0, 0)]),
    "000007": (30, 30, [("person", 1, 1, 30, 30, 0, 0)]),
    "000008": (28, 28, [("dog", 4, 4, 8, 8, 1, 0)]),
}
TRAINVAL = ["000001", "000002", "000003", "000004", "000005", "000006"]
TEST = ["000007", "000008"]


def voc_xml(image_id: str, h: int, w: int, objects) -> str:
    objs = "".join(
        f"<object><name>{n}</name><pose>Unspecified</pose><truncated>{t}</truncated><difficult>{d}</difficult>"
        f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for n, x1, y1, x2, y2, d, t in objects)
    return (f"<annotation><folder>VOC2007</folder><filename>{image_id}.jpg</filename>"
            f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objs}</annotation>")


def write_voc(root: Path, images=None, lists=None) -> Path:
    images = VOC_IMAGES if images is None else images
    lists = {"trainval": TRAINVAL, "test": TEST} if lists is None else lists
    folder = root / "VOCdevkit" / "VOC2007"
    (folder / "Annotations").mkdir(parents=True, exist_ok=True)
    (folder / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for k, (image_id, (h, w, objs)) in enumerate(images.items()):
        write_image(folder / "JPEGImages" / f"{image_id}.jpg", h, w, seed=k, gray=(image_id == "000002"))
        (folder / "Annotations" / f"{image_id}.xml").write_text(voc_xml(image_id, h, w, objs))
    for name, ids in lists.items():
        (folder / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    return folder


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("voc")
    write_voc(root)
    return root


@pytest.fixture(scope="module")
def voc_source(voc_root) -> Source:
    return VOC(data_root=voc_root, split_seed=0, test_fraction=None, image_size=None)


# ---------------------------------------------------------------- COCO writer
COCO_CATS = [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}]


def coco_json(images, start_ann=1) -> dict:
    """images: list of (id, file_name, h, w, anns); ann = (category_id, [x, y, w, h], iscrowd, area)."""
    out = {"images": [], "annotations": [], "categories": COCO_CATS}
    aid = start_ann
    for image_id, fname, h, w, anns in images:
        out["images"].append({"id": image_id, "file_name": fname, "height": h, "width": w})
        for cid, bbox, crowd, area in anns:
            out["annotations"].append({"id": aid, "image_id": image_id, "category_id": cid, "bbox": bbox,
                                       "iscrowd": crowd, "area": area})
            aid += 1
    return out


COCO_TRAIN = [
    (7, "000007.jpg", 30, 40, [(1, [2.5, 3.0, 10.0, 12.0], 0, 90.5), (18, [0.0, 0.0, 40.0, 30.0], 1, 700.0)]),
    (3, "000003.jpg", 40, 20, [(3, [5.0, 6.0, 10.0, 20.0], 0, 150.0)]),
    (9, "000009.jpg", 32, 32, [(3, [20.0, 20.0, 20.0, 20.0], 0, 400.0),     # beyond the image: clipped
                               (1, [10.0, 10.0, 0.0, 5.0], 0, 0.0)]),       # zero width: dropped
    (11, "000011.jpg", 20, 20, []),
]
COCO_VAL = [
    (21, "000021.jpg", 24, 24, [(18, [1.0, 1.0, 5.0, 5.0], 0, 25.0)]),
    (22, "000022.jpg", 24, 24, [(1, [4.0, 2.0, 8.0, 16.0], 0, 128.0)]),
]


def write_coco(root: Path, splits=None) -> Path:
    splits = {"train2017": COCO_TRAIN, "val2017": COCO_VAL} if splits is None else splits
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    start = 1
    for k, (name, images) in enumerate(splits.items()):
        for image_id, fname, h, w, _ in images:
            write_image(root / name / fname, h, w, seed=100 * k + image_id)
        data = coco_json(images, start)
        start += len(data["annotations"])
        (root / "annotations" / f"instances_{name}.json").write_text(json.dumps(data))
    return root


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory) -> Path:
    return write_coco(tmp_path_factory.mktemp("coco"))


@pytest.fixture(scope="module")
def coco_source(coco_root) -> Source:
    return COCO(data_root=coco_root, split_seed=0, test_fraction=None, image_size=None)


# ---------------------------------------------------------------- registry
def test_both_sources_are_registered_for_detection():
    for name in ("voc", "coco"):
        spec = SCENE_SOURCES.get(name)
        assert isinstance(spec, SourceSpec) and spec.name == name and callable(spec.loader)
        assert spec.needs == "data-root" and spec.tracks == ("detection",)
        assert spec.summary and "\n" not in spec.summary and spec.reference


def test_load_scenes_reads_voc_and_caches(voc_root):
    a = load_scenes("voc", data_root=voc_root)
    assert a is load_scenes("voc", data_root=voc_root)
    assert a.info["dataset"] == "voc" and a.info["reference"].startswith("Everingham")


# ---------------------------------------------------------------- VOC
def test_voc_official_split_classes_and_info(voc_source):
    s = voc_source
    assert isinstance(s.train, SceneSet) and isinstance(s.test, SceneSet)
    assert s.info["split"] == "official" and "split_from" not in s.info
    assert s.train.ids == TRAINVAL and s.test.ids == TEST
    assert s.info["sizes"] == {"train": 6, "test": 2}
    assert s.info["class_source"] == "voc20" and s.train.class_names == voc_mod.VOC_CLASSES
    assert len(s.info["class_names"]) == 20 and s.info["class_names"][:3] == ["aeroplane", "bicycle", "bird"]
    cat, dog, person = (voc_mod.VOC_CLASSES.index(n) for n in ("cat", "dog", "person"))
    counts = s.info["instance_counts"]
    assert counts["train"][dog] == 2 and counts["train"][cat] == 3 and counts["train"][person] == 1
    assert counts["test"][dog] == 1 and counts["test"][person] == 1 and sum(counts["test"]) == 2
    assert s.info["area_ranges"] == {"all": [0, 1e10], "small": [0, 1024], "medium": [1024, 9216],
                                     "large": [9216, 1e10]}
    assert s.info["image_size"] is None
    assert len(s.info["fingerprint"]) == 16 and int(s.info["fingerprint"], 16) >= 0
    names = s.info["file_names"]
    assert {"trainval.txt", "test.txt", "Annotations", "JPEGImages"} <= set(names)
    assert "xmin-1" in s.info["coordinates"]
    for img in s.train.images + s.test.images:
        assert img.dtype == torch.uint8 and img.shape[0] == 3  # the grayscale JPEG too


def test_voc_boxes_are_converted_to_zero_based_xyxy(voc_source):
    img, t = by_id(voc_source.train, "000001")
    assert tuple(img.shape) == (3, 30, 40)
    assert isinstance(t["boxes"], tv_tensors.BoundingBoxes) and t["boxes"].canvas_size == (30, 40)
    assert plain(t["boxes"]) == [[0.0, 0.0, 40.0, 30.0], [4.0, 5.0, 14.0, 20.0]]
    assert t["labels"].tolist() == [voc_mod.VOC_CLASSES.index("dog"), voc_mod.VOC_CLASSES.index("person")]
    assert t["difficult"].tolist() == [False, True]
    assert t["area"].tolist() == [1200.0, 150.0]
    _, t8 = by_id(voc_source.test, "000008")
    assert plain(t8["boxes"]) == [[3.0, 3.0, 8.0, 8.0]] and t8["difficult"].tolist() == [True]


def test_voc_sanitising_is_counted(voc_source):
    s = voc_source
    assert s.info["sanitised"] == {"clipped": 1, "dropped_empty": 1, "images_emptied": 1, "size_mismatch": 0}
    _, t3 = by_id(s.train, "000003")
    assert plain(t3["boxes"]) == [[9.0, 9.0, 32.0, 20.0]] and t3["area"].tolist() == [23.0 * 11.0]
    for image_id in ("000004", "000005"):  # emptied by sanitising / never had objects: kept, empty
        _, t = by_id(s.train, image_id)
        assert tuple(t["boxes"].shape) == (0, 4) and tuple(t["labels"].shape) == (0,)
    stats = s.info["stats"]
    assert stats["train"] == {"objects": 7, "difficult": 1, "truncated": 2, "empty_images": 1}
    assert stats["test"] == {"objects": 2, "difficult": 1, "truncated": 0, "empty_images": 0}


def test_voc_image_size_resizes_and_scales_boxes_exactly(voc_root):
    s = VOC(data_root=voc_root, image_size=20)
    assert s.info["image_size"] == 20
    img, t = by_id(s.train, "000002")  # 40 x 20 -> 20 x 10
    assert tuple(img.shape) == (3, 20, 10) and t["boxes"].canvas_size == (20, 10)
    assert plain(t["boxes"]) == [[1.0, 2.0, 6.0, 12.0]]
    assert t["area"].tolist() == [10.0 * 20.0]  # original pixels: size buckets keep their meaning
    img, t = by_id(s.train, "000001")  # 30 x 40 -> 15 x 20
    assert tuple(img.shape) == (3, 15, 20)
    assert plain(t["boxes"]) == [[0.0, 0.0, 20.0, 15.0], [2.0, 2.5, 7.0, 10.0]]
    for img in s.train.images + s.test.images:
        assert max(img.shape[1:]) == 20 and img.dtype == torch.uint8
    usage_error("image size", VOC, data_root=voc_root, image_size=0)


def test_voc_root_may_point_at_vocdevkit_or_voc2007(voc_root, voc_source):
    for root in (voc_root / "VOCdevkit", voc_root / "VOCdevkit" / "VOC2007"):
        s = VOC(data_root=root)
        assert s.info["fingerprint"] == voc_source.info["fingerprint"]


def test_voc_seeded_split_without_test_list(tmp_path):
    write_voc(tmp_path, lists={"train": TRAINVAL[:4], "val": TRAINVAL[4:] + TEST})
    a = VOC(data_root=tmp_path, split_seed=3, test_fraction=0.25)
    b = VOC(data_root=tmp_path, split_seed=3, test_fraction=0.25)
    assert a.info["split"] == {"kind": "seeded", "seed": 3, "test_fraction": 0.25}
    assert a.info["split_from"] == "train.txt+val.txt"
    assert a.train.ids == b.train.ids and a.test.ids == b.test.ids
    assert a.info["fingerprint"] == b.info["fingerprint"]
    assert len(a.test) == 2 and len(a.train) == 6
    assert sorted(a.train.ids + a.test.ids) == sorted(TRAINVAL + TEST)
    others = {tuple(VOC(data_root=tmp_path, split_seed=k, test_fraction=0.25).test.ids) for k in range(4)}
    assert len(others) > 1  # the seed matters
    d = VOC(data_root=tmp_path, split_seed=3)
    assert d.info["split"]["test_fraction"] == 0.2


def test_voc_without_lists_splits_every_annotation(tmp_path):
    write_voc(tmp_path, lists={})
    s = VOC(data_root=tmp_path, split_seed=0)
    assert s.info["split_from"] == "Annotations" and s.info["split"]["kind"] == "seeded"
    assert sorted(s.train.ids + s.test.ids) == sorted(VOC_IMAGES)


def test_voc_other_class_names_come_sorted_from_the_annotations(tmp_path):
    images = {"a": (20, 20, [("zebra", 1, 1, 10, 10, 0, 0), ("dog", 2, 2, 5, 5, 0, 0)]),
              "b": (20, 20, [("apple", 3, 3, 9, 9, 0, 0)])}
    write_voc(tmp_path, images=images, lists={"train": ["a"], "test": ["b"]})
    s = VOC(data_root=tmp_path)
    assert s.info["class_source"] == "annotations" and s.info["class_names"] == ["apple", "dog", "zebra"]
    assert s.info["split"] == "official"
    assert s.train.targets[0]["labels"].tolist() == [2, 1] and s.test.targets[0]["labels"].tolist() == [0]


def test_voc_decoded_size_wins_over_the_stated_size(tmp_path):
    images = {"a": (20, 30, [("dog", 1, 1, 50, 10, 0, 0)]), "b": (20, 20, [("cat", 1, 1, 5, 5, 0, 0)])}
    folder = write_voc(tmp_path, images=images, lists={"train": ["a"], "test": ["b"]})
    (folder / "Annotations" / "a.xml").write_text(voc_xml("a", 100, 100, images["a"][2]))
    s = VOC(data_root=tmp_path)
    assert s.info["sanitised"]["size_mismatch"] == 1 and s.info["sanitised"]["clipped"] == 1
    assert plain(s.train.targets[0]["boxes"]) == [[0.0, 0.0, 30.0, 10.0]]


def test_voc_errors_are_one_line(tmp_path):
    usage_error("needs --data-root", VOC, data_root=None)
    usage_error("does not exist", VOC, data_root=tmp_path / "nowhere")
    usage_error("VOCdevkit/VOC2007/", VOC, data_root=tmp_path)  # an empty folder: say the layout
    folder = write_voc(tmp_path / "r")
    (folder / "Annotations" / "000003.xml").write_text("<annotation><object><name>dog</nam")
    usage_error("000003.xml is corrupt", VOC, data_root=tmp_path / "r")
    (folder / "Annotations" / "000003.xml").write_text(voc_xml("000003", 32, 32, [("dog", "x", 1, 2, 3, 0, 0)]))
    usage_error("not a number", VOC, data_root=tmp_path / "r")
    (folder / "Annotations" / "000003.xml").write_text(voc_xml("000003", 32, 32, []))
    (folder / "JPEGImages" / "000007.jpg").unlink()
    msg = usage_error("000007.jpg", VOC, data_root=tmp_path / "r")
    assert "missing" in msg
    write_image(folder / "JPEGImages" / "000007.jpg", 30, 30, seed=0)
    (folder / "ImageSets" / "Main" / "test.txt").write_text("000007\n000099\n")
    msg = usage_error("000099.xml is missing", VOC, data_root=tmp_path / "r")
    assert "test.txt" in msg
    (folder / "ImageSets" / "Main" / "test.txt").write_text("000007\n")
    (folder / "JPEGImages" / "000007.jpg").write_bytes(b"not a jpeg")
    usage_error("000007.jpg is corrupt", VOC, data_root=tmp_path / "r")
    (folder / "JPEGImages").rename(folder / "images")
    usage_error("lacks JPEGImages/", VOC, data_root=tmp_path / "r")


def test_voc_fingerprint_follows_file_contents(tmp_path):
    folder = write_voc(tmp_path)
    before = VOC(data_root=tmp_path).info["fingerprint"]
    write_image(folder / "JPEGImages" / "000007.jpg", 30, 30, seed=99)
    after = VOC(data_root=tmp_path).info["fingerprint"]
    assert after != before
    (folder / "Annotations" / "000008.xml").write_text(voc_xml("000008", 28, 28, [("dog", 4, 4, 8, 9, 1, 0)]))
    assert VOC(data_root=tmp_path).info["fingerprint"] != after
    (folder / "Annotations" / "000008.xml").write_text(voc_xml("000008", 28, 28, [("dog", 4, 4, 8, 9, 0, 0)]))
    assert len({VOC(data_root=tmp_path).info["fingerprint"], after, before}) == 3  # difficult counts too


# ---------------------------------------------------------------- COCO
def test_coco_official_split_categories_and_boxes(coco_source):
    s = coco_source
    assert s.info["split"] == "official" and s.info["dataset"] == "coco"
    assert s.info["class_names"] == ["person", "car", "dog"]  # sorted category ids 1, 3, 18
    assert s.info["category_ids"] == [1, 3, 18] and s.info["category_map"] == {"1": 0, "3": 1, "18": 2}
    assert s.train.ids == ["000003", "000007", "000009", "000011"]  # by image id
    assert s.test.ids == ["000021", "000022"]
    assert s.info["sizes"] == {"train": 4, "test": 2}
    img, t = by_id(s.train, "000007")
    assert tuple(img.shape) == (3, 30, 40)
    assert plain(t["boxes"]) == [[2.5, 3.0, 12.5, 15.0], [0.0, 0.0, 40.0, 30.0]]
    assert t["labels"].tolist() == [0, 2] and t["difficult"].tolist() == [False, True]
    assert t["area"].tolist() == [90.5, 700.0]  # the annotation's area field
    _, t = by_id(s.test, "000022")
    assert plain(t["boxes"]) == [[4.0, 2.0, 12.0, 18.0]] and t["labels"].tolist() == [0]
    assert s.info["instance_counts"] == {"train": [1, 2, 1], "test": [1, 0, 1]}
    assert s.info["stats"]["train"] == {"objects": 5, "difficult": 1, "crowd": 1, "empty_images": 1}
    assert {"instances_train2017.json", "instances_val2017.json", "train2017", "val2017"} == set(s.info["file_names"])
    assert len(s.info["fingerprint"]) == 16 and s.info["area_ranges"]["small"] == [0, 1024]


def test_coco_sanitising_is_counted(coco_source):
    s = coco_source
    assert s.info["sanitised"] == {"clipped": 1, "dropped_empty": 1, "images_emptied": 0, "size_mismatch": 0}
    _, t = by_id(s.train, "000009")
    assert plain(t["boxes"]) == [[20.0, 20.0, 32.0, 32.0]] and t["labels"].tolist() == [1]
    assert t["area"].tolist() == [400.0]
    _, t = by_id(s.train, "000011")
    assert tuple(t["boxes"].shape) == (0, 4)


def test_coco_image_size_resizes_and_scales_boxes_exactly(coco_root):
    s = COCO(data_root=coco_root, image_size=20)
    img, t = by_id(s.train, "000007")  # 30 x 40 -> 15 x 20
    assert tuple(img.shape) == (3, 15, 20) and t["boxes"].canvas_size == (15, 20)
    assert plain(t["boxes"]) == [[1.25, 1.5, 6.25, 7.5], [0.0, 0.0, 20.0, 15.0]]
    assert t["area"].tolist() == [90.5, 700.0]
    img, t = by_id(s.test, "000021")  # 24 x 24 -> 20 x 20 (scale 5/6)
    assert tuple(img.shape) == (3, 20, 20)
    assert torch.allclose(t["boxes"].as_subclass(torch.Tensor), torch.tensor([[5 / 6, 5 / 6, 5.0, 5.0]]))


def test_coco_single_file_is_a_seeded_split(tmp_path):
    write_coco(tmp_path, splits={"mydata": COCO_TRAIN + COCO_VAL})
    a = COCO(data_root=tmp_path, split_seed=1, test_fraction=0.5)
    b = COCO(data_root=tmp_path, split_seed=1, test_fraction=0.5)
    assert a.info["split"] == {"kind": "seeded", "seed": 1, "test_fraction": 0.5}
    assert a.info["split_from"] == "instances_mydata.json"
    assert a.test.ids == b.test.ids and len(a.test) == 3 and len(a.train) == 3
    assert a.info["fingerprint"] == b.info["fingerprint"]
    assert sorted(a.train.ids + a.test.ids) == sorted(name[:-4] for _, name, *_ in COCO_TRAIN + COCO_VAL)


def test_coco_errors_are_one_line(tmp_path):
    usage_error("needs --data-root", COCO, data_root=None)
    usage_error("does not exist", COCO, data_root=tmp_path / "nowhere")
    usage_error("annotations/ is missing", COCO, data_root=tmp_path)
    root = write_coco(tmp_path / "r")
    good = (root / "annotations" / "instances_val2017.json").read_text()
    (root / "annotations" / "instances_val2017.json").write_text(good[:40])
    usage_error("instances_val2017.json is corrupt", COCO, data_root=root)
    (root / "annotations" / "instances_val2017.json").write_text(good)
    (root / "val2017" / "000022.jpg").unlink()
    msg = usage_error("000022.jpg", COCO, data_root=root)
    assert "missing" in msg
    (root / "val2017").rename(root / "v")
    usage_error("val2017/ for", COCO, data_root=root)
    (root / "v").rename(root / "val2017")
    bad = json.loads(good)
    bad["annotations"][0]["category_id"] = 99
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(bad))
    usage_error("category 99", COCO, data_root=root)


def test_coco_fingerprint_follows_file_contents(tmp_path):
    root = write_coco(tmp_path)
    before = COCO(data_root=root).info["fingerprint"]
    write_image(root / "val2017" / "000021.jpg", 24, 24, seed=12345)
    assert COCO(data_root=root).info["fingerprint"] != before
