"""Objects cut out of scenes as fixed-size patches with their masks (what ``cgan-paste`` learns).

:func:`object_crops` turns the objects of a :class:`~..data_recipes.sceneset.SceneSet` into an
:class:`~..data_recipes.imageset.ImageSet` of ``C + 1`` channels, ``size`` x ``size`` px:

* kept: objects that are not ``difficult`` and are visible enough (``occlusion < max_occlusion``;
  0.3 by default, the lower end of the detection metrics' ``heavy`` bucket: a heavily occluded
  object's crop shows a fragment). A class none of whose objects is visible enough keeps all of
  its non-difficult objects (a rare class would otherwise have nothing to learn from);
* channels ``0..C-1``: the object's box (outwards to whole pixels) resized to ``size`` x ``size``
  (bilinear, antialiased; the box is stretched to a square: its aspect comes back when the
  generated patch is resized to a real box of its class, see ``cgan_paste.py``);
* channel ``C``: the object's visible mask over the same box, resized the same way and
  thresholded at 0.5, stored as 0 / 255 (the mask travels as one more image channel, so a GAN
  trained on these patches generates an object and its mask together; sources without masks,
  VOC / COCO, get the full box as the mask);
* labels: the object classes; ``sizes`` (N, 2): each kept object's box (height, width) in px,
  the real scales of its class.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data_recipes.imageset import ImageSet
from ..data_recipes.sceneset import SceneSet

MAX_OCCLUSION = 0.3


@dataclass
class Crops:
    """``images``: the (C + 1)-channel patches; ``sizes``: float (N, 2) box (height, width) of each
    cropped object; ``where``: int64 (N, 2) its (image index, object index) in the scene set."""

    images: ImageSet
    sizes: torch.Tensor
    where: torch.Tensor


def box_pixels(box) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the whole pixels a float XYXY box touches."""
    x1, y1, x2, y2 = (float(v) for v in box)
    y0, x0 = math.floor(y1), math.floor(x1)
    return y0, max(math.ceil(y2), y0 + 1), x0, max(math.ceil(x2), x0 + 1)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Float (C, h, w) resized to ``size`` (bilinear, antialiased)."""
    return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]


def crop_object(image: torch.Tensor, box, mask: torch.Tensor | None, size: int) -> torch.Tensor:
    """uint8 (C + 1, size, size): the box's pixels and its mask (None: the full box) resized."""
    y0, y1, x0, x1 = box_pixels(box)
    region = image[:, y0:y1, x0:x1].float()
    m = (torch.ones(1, y1 - y0, x1 - x0) if mask is None else mask[None, y0:y1, x0:x1].float())
    pixels = resize(region, (size, size)).round_().clamp_(0, 255)
    m = (resize(m, (size, size)) >= 0.5).float() * 255.0
    return torch.cat([pixels, m]).to(torch.uint8)


def object_crops(scenes: SceneSet, size: int, max_occlusion: float = MAX_OCCLUSION) -> Crops:
    """The kept objects of ``scenes`` as :class:`Crops` (see the module docstring)."""
    where = []
    for i, t in enumerate(scenes.targets):
        for k in range(len(t["labels"])):
            if not bool(t["difficult"][k]):
                where.append((i, k, int(t["labels"][k]), float(t["occlusion"][k]) < max_occlusion))
    visible_classes = {c for _, _, c, ok in where if ok}
    where = [(i, k) for i, k, c, ok in where if ok or c not in visible_classes]
    images, labels, sizes = [], [], []
    for i, k in where:
        t = scenes.targets[i]
        box = t["boxes"].as_subclass(torch.Tensor)[k]
        mask = t["masks"].as_subclass(torch.Tensor)[k] if "masks" in t else None
        images.append(crop_object(scenes.images[i], box, mask, size))
        labels.append(int(t["labels"][k]))
        sizes.append([float(box[3] - box[1]), float(box[2] - box[0])])
    C = scenes.channels
    stack = torch.stack(images) if images else torch.zeros((0, C + 1, size, size), dtype=torch.uint8)
    return Crops(ImageSet(stack, torch.tensor(labels, dtype=torch.int64), list(scenes.class_names)),
                 torch.tensor(sizes, dtype=torch.float32).reshape(-1, 2),
                 torch.tensor(where, dtype=torch.int64).reshape(-1, 2))
