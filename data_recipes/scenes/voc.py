"""``voc``: Pascal VOC 2007 detection (``--dataset voc --data-root ROOT``).

Layout: ``ROOT/VOCdevkit/VOC2007/`` (ROOT may also be ``VOCdevkit`` or ``VOC2007`` itself, or any
folder in the VOC layout) holding ``Annotations/<id>.xml``, ``JPEGImages/<id>.jpg`` and
``ImageSets/Main/{train,val,trainval,test}.txt``.

Splits: train = ``trainval.txt`` (else ``train.txt`` + ``val.txt``, else ``train.txt``), test =
``test.txt``. Both present: ``"official"``. Only one side present (or no lists at all: every
``Annotations/*.xml``): a seeded image-level split ``{"kind": "seeded", "seed", "test_fraction"}``
(default test fraction 0.2) of it, ``info["split_from"]`` naming the pool.

Classes: the 20 VOC classes in VOC's order when every annotated name is one of them
(``class_source="voc20"``), else the sorted set of names found (``"annotations"``).

Objects: VOC's ``bndbox`` is 1-based and inclusive, so the 0-based XYXY box is
``(xmin - 1, ymin - 1, xmax, ymax)``; ``difficult`` is kept as ``target["difficult"]`` (ignored by
the evaluation, as VOC's own does); ``truncated`` is only counted in ``info["stats"]``. ``area`` is
the box area in *original* pixels (after clipping, before any resizing), so COCO's size buckets
(``info["area_ranges"]``) keep their meaning with ``image_size``.

Reading, sanitising, resizing, splitting and the info record: :mod:`.real` (shared with
:mod:`.coco`).
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np

from ...benchmarks.contract.errors import UsageError
from ..sources._common import SourceSpec, check_fraction, corrupt, require_root
from . import SCENE_SOURCES
from .real import FIX, SANITISING, assemble, build_sets, check_image_size, new_counts, seeded_split, split_stats

VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor"]
DEFAULT_TEST_FRACTION = 0.2
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")
LAYOUT = "DIR/VOCdevkit/VOC2007/ with Annotations/, JPEGImages/ and ImageSets/Main/{trainval,test}.txt"


def find_voc_folder(root: str) -> str:
    """The VOC2007 folder under ``root`` (``root`` itself, ``root/VOC2007`` or
    ``root/VOCdevkit/VOC2007``); one-line errors for a missing root or layout."""
    if not os.path.isdir(root):
        raise UsageError(f"data root {root} does not exist or is not a folder; files expected in {LAYOUT}")
    for cand in (root, os.path.join(root, "VOC2007"), os.path.join(root, "VOCdevkit", "VOC2007")):
        if os.path.isdir(os.path.join(cand, "Annotations")) or os.path.isdir(os.path.join(cand, "JPEGImages")):
            missing = [d for d in ("Annotations", "JPEGImages") if not os.path.isdir(os.path.join(cand, d))]
            if missing:
                raise UsageError(f"{cand} lacks {' and '.join(d + '/' for d in missing)}; "
                                 f"expected {LAYOUT}")
            return cand
    raise UsageError(f"no VOC folder in {root}: expected {LAYOUT} (or ROOT pointing at VOCdevkit/ or VOC2007/)")


def read_list(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise corrupt(path, "VOC image-set list", f"{type(e).__name__}: {e}", hint=FIX) from None
    return [line.split()[0] for line in lines if line.strip()]


def voc_lists(folder: str):
    """(train ids, train lists, test ids, test lists); ids None where no list exists."""
    main = os.path.join(folder, "ImageSets", "Main")
    have = {n: os.path.join(main, f"{n}.txt") for n in ("trainval", "train", "val", "test")
            if os.path.isfile(os.path.join(main, f"{n}.txt"))}
    if "trainval" in have:
        train_lists = [have["trainval"]]
    else:
        train_lists = [have[n] for n in ("train", "val") if n in have]
    test_lists = [have["test"]] if "test" in have else []

    def ids(paths):
        if not paths:
            return None
        seen: dict[str, None] = {}
        for p in paths:
            seen.update(dict.fromkeys(read_list(p)))
        return list(seen)

    return ids(train_lists), train_lists, ids(test_lists), test_lists


def _text(node, tag: str, path: str, required: bool = True):
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if required:
            raise corrupt(path, "VOC annotation XML", f"an object lacks <{tag}>", hint=FIX)
        return None
    return child.text.strip()


def _number(node, tag: str, path: str) -> float:
    text = _text(node, tag, path)
    try:
        return float(text)
    except ValueError:
        raise corrupt(path, "VOC annotation XML", f"<{tag}> is {text!r}, not a number", hint=FIX) from None


def _flag(node, tag: str, path: str) -> int:
    text = _text(node, tag, path, required=False)
    if text is None:
        return 0
    try:
        return int(float(text))
    except ValueError:
        raise corrupt(path, "VOC annotation XML", f"<{tag}> is {text!r}, not 0 or 1", hint=FIX) from None


def parse_voc_xml(path: str, image_id: str, image_dir: str) -> dict:
    """One annotation: its image path, 0-based XYXY boxes (original pixels), names and flags."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError, UnicodeDecodeError) as e:
        raise corrupt(path, "VOC annotation XML", f"{type(e).__name__}: {e}", hint=FIX) from None
    if root.tag != "annotation":
        raise corrupt(path, "VOC annotation XML", f"root element <{root.tag}>, expected <annotation>", hint=FIX)
    filename = root.findtext("filename")
    candidates = ([os.path.basename(filename.strip())] if filename and filename.strip() else [])
    candidates += [image_id + ext for ext in IMAGE_EXTS]
    image = next((os.path.join(image_dir, c) for c in candidates if os.path.isfile(os.path.join(image_dir, c))), None)
    if image is None:
        raise UsageError(f"image of annotation {path} is missing: expected {os.path.join(image_dir, candidates[0])}; "
                         "copy the JPEGImages/ that belong to these annotations")
    size = root.find("size")
    stated = None
    if size is not None and size.findtext("width") and size.findtext("height"):
        try:
            stated = (int(float(size.findtext("height"))), int(float(size.findtext("width"))))
        except ValueError:
            stated = None
    names, boxes, difficult, truncated = [], [], [], 0
    for obj in root.iter("object"):
        names.append(_text(obj, "name", path))
        bnd = obj.find("bndbox")
        if bnd is None:
            raise corrupt(path, "VOC annotation XML", f"object {names[-1]!r} lacks <bndbox>", hint=FIX)
        xmin, ymin, xmax, ymax = (_number(bnd, t, path) for t in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append([xmin - 1.0, ymin - 1.0, xmax, ymax])  # 1-based inclusive -> 0-based XYXY
        difficult.append(bool(_flag(obj, "difficult", path)))
        truncated += int(bool(_flag(obj, "truncated", path)))
    return {"id": image_id, "image": image, "size": stated, "names": names,
            "boxes": np.asarray(boxes, dtype=np.float64).reshape(-1, 4), "difficult": difficult, "area": None,
            "stats": {"objects": len(names), "difficult": sum(difficult), "truncated": truncated}}


def load_voc(*, data_root=None, data_path=None, download=False, split_seed=0, test_fraction=None, image_size=None):
    root = require_root("voc", data_root, LAYOUT)
    image_size = check_image_size(image_size)
    folder = find_voc_folder(root)
    ann_dir, img_dir = os.path.join(folder, "Annotations"), os.path.join(folder, "JPEGImages")
    train_ids, train_lists, test_ids, test_lists = voc_lists(folder)
    if train_ids is None and test_ids is None:
        pool_ids = sorted(os.path.splitext(f)[0] for f in os.listdir(ann_dir) if f.endswith(".xml"))
        if not pool_ids:
            raise UsageError(f"no annotations in {ann_dir} and no ImageSets/Main/*.txt lists; expected {LAYOUT}")
        split_from = "Annotations"
    else:
        split_from = None

    def parse(ids, lists):
        out = []
        for image_id in ids:
            path = os.path.join(ann_dir, image_id + ".xml")
            if not os.path.isfile(path):
                where = f" (listed in {', '.join(lists)})" if lists else ""
                raise UsageError(f"annotation {path} is missing{where}; copy Annotations/ of the same VOC release")
            out.append(parse_voc_xml(path, image_id, img_dir))
        return out

    if split_from is None and train_ids is not None and test_ids is not None:
        train_items, test_items = parse(train_ids, train_lists), parse(test_ids, test_lists)
        items = train_items + test_items
        train_index = list(range(len(train_items)))
        test_index = list(range(len(train_items), len(items)))
        split: object = "official"
    else:
        if split_from is None:
            split_from = "+".join(os.path.basename(p) for p in (train_lists or test_lists))
            items = parse(train_ids if train_ids is not None else test_ids, train_lists or test_lists)
        else:
            items = parse(pool_ids, [])
        f = check_fraction(DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction)
        train_index, test_index = seeded_split(len(items), split_seed, f, f"voc ({split_from}, {len(items)} images)")
        split = {"kind": "seeded", "seed": int(split_seed), "test_fraction": f}

    found = {n for it in items for n in it["names"]}
    if found <= set(VOC_CLASSES):
        class_names, class_source = list(VOC_CLASSES), "voc20"
    else:
        class_names, class_source = sorted(found), "annotations"
    index = {n: i for i, n in enumerate(class_names)}
    for it in items:
        it["labels"] = [index[n] for n in it["names"]]

    counts = new_counts()
    train, test = build_sets(items, class_names, train_index, test_index, image_size, counts)
    return assemble(
        "voc",
        reference=SCENE_SOURCES.get("voc").reference if "voc" in SCENE_SOURCES else "",
        train=train, test=test, split=split,
        files=train_lists + test_lists + [ann_dir, img_dir],
        class_source=class_source, image_size=image_size, sanitised=counts,
        stats={"train": split_stats(items, train_index), "test": split_stats(items, test_index)},
        data_root=root,
        folder=folder,
        **({"split_from": split_from} if split != "official" else {}),
        coordinates="VOC bndbox is 1-based inclusive: 0-based XYXY = (xmin-1, ymin-1, xmax, ymax)",
        area="box area in original pixels (after clipping, before image_size resizing)",
        sanitising=SANITISING,
    )


SCENE_SOURCES.register("voc", SourceSpec(
    name="voc",
    loader=load_voc,
    summary="Pascal VOC 2007 detection (20 classes; VOC-layout folders with other class sets too)",
    reference="Everingham et al., The PASCAL Visual Object Classes (VOC) Challenge (IJCV, 2010)",
    needs="data-root",
    tracks=("detection",),
    recipes=("natural", "rare-class"),
))
