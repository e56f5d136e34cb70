"""``voc-seg``: Pascal VOC semantic segmentation (``--dataset voc-seg --data-root DIR``).

* Layout: torchvision's ``VOCSegmentation`` root, ``DIR/VOCdevkit/VOC2012/`` holding
  ``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png`` and
  ``ImageSets/Segmentation/{train,val}.txt``. ``DIR`` may also be ``VOCdevkit/`` or ``VOC2012/``
  itself; ``VOC2007`` is used when it is the folder found (VOC2012 first). ``info["year"]`` and
  ``info["folder"]`` record which.
* Masks are read as torchvision reads them: ``Image.open`` without ``convert``, so a palette
  (``P``) PNG gives its palette indices: ``0`` background, ``1..20`` the VOC classes, ``255`` void
  (object boundaries and difficult regions). A single-channel mask that is not a palette image
  (e.g. ``L``, as re-saved copies often are) is accepted with the same indices; a colour (RGB)
  mask is an error (its colours are not indices). Values ``21..254`` are a one-line error naming
  the file.
* Split (``"official"``): train = ``train.txt``, test = ``val.txt`` (the standard protocol; VOC's
  test labels are withheld). ``--split-seed`` and ``--test-fraction`` are ignored.
* ``--image-size N``: the longer side becomes N (images bilinear with antialias, masks nearest).
  Nothing is downloaded (``--download`` is ignored).
"""
from __future__ import annotations

import os
import re

from ...benchmarks.contract.errors import UsageError
from ..imageset import Source
from ..scenes.real import check_image_size
from ..scenes.voc import VOC_CLASSES, read_list
from ..sources._common import SourceSpec, require_root
from . import SEG_SOURCES
from .layout import VOID, load_pair, lookup_table, seg_source

NAME = "voc-seg"
CLASSES = ["background"] + list(VOC_CLASSES)
LABEL_MAP = {**{i: i for i in range(len(CLASSES))}, 255: VOID}
ALLOWED = "VOC labels are 0..20, 255 = void"
NEEDED = ("JPEGImages", "SegmentationClass", os.path.join("ImageSets", "Segmentation", "train.txt"),
          os.path.join("ImageSets", "Segmentation", "val.txt"))
LAYOUT = ("DIR/VOCdevkit/VOC2012/ (or VOCdevkit/, VOC2012/ or VOC2007/ itself) with JPEGImages/, "
          "SegmentationClass/ and ImageSets/Segmentation/{train,val}.txt")
REFERENCE = "Everingham et al., The PASCAL Visual Object Classes (VOC) Challenge (IJCV, 2010)"
MASK_HINT = ("VOC SegmentationClass PNGs are palette images whose indices are the classes; "
             "a colour mask cannot be read, use the original PNGs")


def find_voc_seg(root: str) -> str:
    """The VOC folder under ``root`` (``root`` itself, ``root/VOC20xx`` or
    ``root/VOCdevkit/VOC20xx``, VOC2012 before VOC2007); one-line errors for a missing layout."""
    if not os.path.isdir(root):
        raise UsageError(f"dataset {NAME!r}: data root {root} does not exist or is not a folder (expected {LAYOUT})")
    cands = [root] + [os.path.join(root, *sub, year) for sub in ((), ("VOCdevkit",)) for year in ("VOC2012", "VOC2007")]
    for cand in cands:
        if os.path.isdir(os.path.join(cand, "SegmentationClass")) or os.path.isdir(os.path.join(cand, "JPEGImages")):
            missing = [p for p in NEEDED if not os.path.exists(os.path.join(cand, p))]
            if missing:
                raise UsageError(f"dataset {NAME!r}: {cand} lacks {', '.join(missing)} (expected {LAYOUT})")
            return cand
    raise UsageError(f"dataset {NAME!r}: no VOC folder in {root} (expected {LAYOUT})")


def load_voc_seg(*, data_root=None, data_path=None, download=False, split_seed=0, test_fraction=None,
                 image_size=None) -> Source:
    root = require_root(NAME, data_root, LAYOUT)
    size = check_image_size(image_size)
    folder = find_voc_seg(root)
    name = os.path.basename(os.path.normpath(folder))
    year = name if re.fullmatch(r"VOC\d{4}", name) else None
    image_dir, mask_dir = os.path.join(folder, "JPEGImages"), os.path.join(folder, "SegmentationClass")
    lists = {s: os.path.join(folder, "ImageSets", "Segmentation", f"{s}.txt") for s in ("train", "val")}
    ids = {s: list(dict.fromkeys(read_list(p))) for s, p in lists.items()}
    for s, p in lists.items():
        if not ids[s]:
            raise UsageError(f"dataset {NAME!r}: {p} lists no images (expected {LAYOUT})")
    both = sorted(set(ids["train"]) & set(ids["val"]))
    if both:
        raise UsageError(f"dataset {NAME!r}: {both[0]} is in both {lists['train']} and {lists['val']}; "
                         "use the lists of one VOC release")
    lut = lookup_table(LABEL_MAP)

    def load(split: str) -> list:
        out = []
        for i in ids[split]:
            image, mask = os.path.join(image_dir, i + ".jpg"), os.path.join(mask_dir, i + ".png")
            for path, what in ((mask, "annotation"), (image, "image")):
                if not os.path.isfile(path):
                    raise UsageError(f"{what} {path} is missing ({i} is listed in {lists[split]}); "
                                     "copy JPEGImages/ and SegmentationClass/ of the same VOC release")
            out.append(load_pair(i, image, mask, lut, ALLOWED, size, mask_hint=MASK_HINT))
        return out

    return seg_source(
        NAME, reference=REFERENCE, data_root=root, train_items=load("train"), test_items=load("val"),
        class_names=CLASSES, class_source="background + the 20 VOC classes", label_map=LABEL_MAP, split="official",
        files=[lists["train"], lists["val"], image_dir, mask_dir], image_size=size,
        folder=folder, year=year,
        protocol=f"{year or 'VOC'} segmentation: train.txt to train, val.txt to test (test labels are withheld)",
    )


SEG_SOURCES.register(NAME, SourceSpec(
    name=NAME, loader=load_voc_seg, needs="data-root", tracks=("segmentation",),
    recipes=("natural",),
    summary="Pascal VOC 2012 segmentation (background + 20 classes, 255 = void; train.txt / val.txt)",
    reference=REFERENCE,
))
