"""``coco``: COCO-format object detection (``--dataset coco --data-root ROOT``).

Layout: ``ROOT/annotations/instances_<train...>.json`` + ``instances_<val...>.json`` with the
images of ``instances_<X>.json`` in ``ROOT/<X>/`` (``instances_train2017.json`` + ``train2017/``,
``instances_val2017.json`` + ``val2017/``): the official split (train = train, test = val). One
``instances_*.json`` only (either of those, or any ``instances_<X>.json`` with ``ROOT/<X>/``): a
seeded image-level split of it (``{"kind": "seeded", "seed", "test_fraction"}``, default 0.2).

Read with pycocotools' ``COCO`` (its prints suppressed). Category ids are mapped to contiguous
labels ``0..K-1`` in sorted id order (``info["category_ids"][label]`` is the COCO id); class names
come from the categories. Objects: ``bbox`` ``[x, y, w, h]`` -> XYXY ``[x, y, x + w, y + h]``;
``iscrowd=1`` objects are kept with ``difficult=True`` (the evaluation ignores them, as COCOeval
does crowd regions); ``area`` is the annotation's ``area`` field (original pixels; the box area
where it is missing); masks are not loaded. Images are ordered by image id. Resizing,
sanitising, the info record and the errors are those of :mod:`.voc`.
"""
from __future__ import annotations

import contextlib
import glob
import io
import os

import numpy as np

from ...benchmarks.contract.errors import UsageError
from ..sources._common import (
    SourceSpec,
    check_fraction,
    corrupt,
    one_line,
    require_root,
)
from . import SCENE_SOURCES
from .real import FIX, SANITISING, assemble, build_sets, check_image_size, new_counts, seeded_split, split_stats
from .voc import DEFAULT_TEST_FRACTION

LAYOUT = ("DIR/annotations/instances_train2017.json + instances_val2017.json with the images in "
          "DIR/train2017/ and DIR/val2017/ (or one DIR/annotations/instances_<name>.json with DIR/<name>/)")


def find_annotation_files(root: str) -> tuple[str | None, str | None, str | None]:
    """(train json, val json, single json): the official pair, or one file for a seeded split."""
    if not os.path.isdir(root):
        raise UsageError(f"data root {root} does not exist or is not a folder; files expected in {LAYOUT}")
    ann = os.path.join(root, "annotations")
    if not os.path.isdir(ann):
        raise UsageError(f"{ann}/ is missing; expected {LAYOUT}")
    found = sorted(glob.glob(os.path.join(glob.escape(ann), "instances_*.json")))
    if not found:
        raise UsageError(f"no instances_*.json in {ann}; expected {LAYOUT}")
    train = [p for p in found if os.path.basename(p).startswith("instances_train")]
    val = [p for p in found if os.path.basename(p).startswith("instances_val")]
    for kind, paths in (("train", train), ("val", val)):
        if len(paths) > 1:
            raise UsageError(f"several {kind} annotation files in {ann} ({', '.join(os.path.basename(p) for p in paths)}); "
                             "keep one instances_train*.json and one instances_val*.json")
    if train and val:
        return train[0], val[0], None
    if len(found) == 1:
        return None, None, found[0]
    if len(train) + len(val) == 1:  # one train or val file beside other instances_*.json: use it
        return None, None, (train or val)[0]
    raise UsageError(f"cannot tell the splits apart in {ann} ({', '.join(os.path.basename(p) for p in found)}); "
                     "keep instances_train*.json + instances_val*.json, or a single instances_*.json")


def image_folder(root: str, json_path: str) -> str:
    name = os.path.splitext(os.path.basename(json_path))[0][len("instances_"):]
    folder = os.path.join(root, name)
    if not os.path.isdir(folder):
        raise UsageError(f"image folder {folder}/ for {json_path} is missing; expected {LAYOUT}")
    return folder


def read_coco(path: str):
    """pycocotools' ``COCO`` of ``path`` (its prints suppressed); a one-line error when corrupt."""
    from pycocotools.coco import COCO

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(path)
    except Exception as e:  # noqa: BLE001 - JSONDecodeError, KeyError, AssertionError, ...: a bad file
        raise corrupt(path, "COCO annotation JSON", f"{type(e).__name__}: {e}", hint=FIX) from None
    if not isinstance(coco.dataset, dict) or not isinstance(coco.dataset.get("images"), list):
        raise corrupt(path, "COCO annotation JSON", "no \"images\" list", hint=FIX)
    if not isinstance(coco.dataset.get("categories"), list):
        raise corrupt(path, "COCO annotation JSON", "no \"categories\" list", hint=FIX)
    return coco


def categories(cocos: list[tuple[str, object]]) -> dict[int, str]:
    cats: dict[int, str] = {}
    for path, coco in cocos:
        for c in coco.dataset["categories"]:
            try:
                cid, name = int(c["id"]), str(c["name"])
            except (KeyError, TypeError, ValueError):
                raise corrupt(path, "COCO annotation JSON", f"category {one_line(c)[:80]} lacks an integer id or a name",
                              hint=FIX) from None
            if cats.get(cid, name) != name:
                raise UsageError(f"category id {cid} is {cats[cid]!r} in one annotation file and {name!r} in {path}; "
                                 "use annotation files of the same release")
            cats[cid] = name
    if not cats:
        raise corrupt(cocos[0][0], "COCO annotation JSON", "no categories", hint=FIX)
    return cats


def coco_items(path: str, coco, folder: str, label_of: dict[int, int]) -> list[dict]:
    """One item per image (sorted by id): its path, XYXY boxes in original pixels, labels, crowd
    flags and the annotations' ``area``."""
    items = []
    try:
        image_ids = sorted(coco.imgs)
    except TypeError:
        raise corrupt(path, "COCO annotation JSON", "image ids of mixed types", hint=FIX) from None
    for image_id in image_ids:
        img = coco.imgs[image_id]
        fname = img.get("file_name") if isinstance(img, dict) else None
        if not isinstance(fname, str) or not fname:
            raise corrupt(path, "COCO annotation JSON", f"image {image_id} has no file_name", hint=FIX)
        image = os.path.join(folder, fname)
        if not os.path.isfile(image):
            raise UsageError(f"image {image} of {path} is missing; copy the images of that annotation file to {folder}/")
        boxes, labels, crowd, area = [], [], [], []
        for a in coco.imgToAnns.get(image_id, []):
            try:
                x, y, w, h = (float(v) for v in a["bbox"])
                cid = int(a["category_id"])
            except (KeyError, TypeError, ValueError):
                raise corrupt(path, "COCO annotation JSON",
                              f"annotation {a.get('id', '?')} lacks a 4-number bbox or a category_id", hint=FIX) from None
            if cid not in label_of:
                raise corrupt(path, "COCO annotation JSON",
                              f"annotation {a.get('id', '?')} names category {cid}, which is not in categories", hint=FIX)
            boxes.append([x, y, x + w, y + h])  # [x, y, w, h] -> XYXY
            labels.append(label_of[cid])
            crowd.append(bool(a.get("iscrowd", 0)))
            area.append(float(a["area"]) if isinstance(a.get("area"), (int, float)) else max(w, 0.0) * max(h, 0.0))
        size = None
        if isinstance(img.get("height"), (int, float)) and isinstance(img.get("width"), (int, float)):
            size = (int(img["height"]), int(img["width"]))
        items.append({"id": os.path.splitext(os.path.basename(fname))[0], "image": image, "size": size,
                      "boxes": np.asarray(boxes, dtype=np.float64).reshape(-1, 4), "labels": labels,
                      "difficult": crowd, "area": area,
                      "stats": {"objects": len(labels), "difficult": sum(crowd), "crowd": sum(crowd)}})
    return items


def load_coco(*, data_root=None, data_path=None, download=False, split_seed=0, test_fraction=None, image_size=None):
    root = require_root("coco", data_root, LAYOUT)
    image_size = check_image_size(image_size)
    train_json, val_json, single = find_annotation_files(root)
    jsons = [p for p in (train_json, val_json, single) if p is not None]
    folders = {p: image_folder(root, p) for p in jsons}
    cocos = [(p, read_coco(p)) for p in jsons]
    cats = categories(cocos)
    category_ids = sorted(cats)
    label_of = {cid: i for i, cid in enumerate(category_ids)}
    class_names = [cats[cid] for cid in category_ids]
    parts = [coco_items(p, c, folders[p], label_of) for p, c in cocos]

    if single is None:
        items = parts[0] + parts[1]
        train_index = list(range(len(parts[0])))
        test_index = list(range(len(parts[0]), len(items)))
        split: object = "official"
        extra = {}
    else:
        items = parts[0]
        f = check_fraction(DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction)
        what = f"coco ({os.path.basename(single)}, {len(items)} images)"
        train_index, test_index = seeded_split(len(items), split_seed, f, what)
        split = {"kind": "seeded", "seed": int(split_seed), "test_fraction": f}
        extra = {"split_from": os.path.basename(single)}

    counts = new_counts()
    train, test = build_sets(items, class_names, train_index, test_index, image_size, counts)
    keys = ("objects", "difficult", "crowd")
    return assemble(
        "coco",
        reference=SCENE_SOURCES.get("coco").reference if "coco" in SCENE_SOURCES else "",
        train=train, test=test, split=split,
        files=jsons + [folders[p] for p in jsons],
        class_source="categories", image_size=image_size, sanitised=counts,
        stats={"train": split_stats(items, train_index, keys), "test": split_stats(items, test_index, keys)},
        data_root=root,
        category_ids=category_ids,
        category_map={str(cid): label_of[cid] for cid in category_ids},
        **extra,
        coordinates="COCO bbox [x, y, w, h] -> XYXY [x, y, x + w, y + h] (0-based pixels)",
        area="the annotation's area field (original pixels; box area where missing)",
        crowd="iscrowd=1 objects kept as difficult=True (ignored by the evaluation, like COCOeval)",
        sanitising=SANITISING,
    )


SCENE_SOURCES.register("coco", SourceSpec(
    name="coco",
    loader=load_coco,
    summary="COCO-format object detection (instances_*.json + image folders; official or seeded split)",
    reference="Lin et al., Microsoft COCO: Common Objects in Context (ECCV, 2014)",
    needs="data-root",
    tracks=("detection",),
    recipes=("natural", "rare-class"),
))
