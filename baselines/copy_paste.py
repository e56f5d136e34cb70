"""Simple Copy-Paste (Ghiasi et al. 2021): paste objects of another image of the batch."""
from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from ..benchmarks.contract import Context, Method, UsageError
from ..benchmarks.contract.method import register_method
from ..data_recipes.sceneset import OBJECT_KEYS, select_objects
from .region_paste import paste_regions, uniform_offset as _offset

MIN_PIXELS = 4  # an object left with fewer visible pixels is dropped (a pasted one is not pasted)
MAX_SCALE = 4.0


def tight_boxes(masks: torch.Tensor) -> torch.Tensor:
    """XYXY boxes (n, 4) of non-empty masks (n, H, W), the canvas convention ``x2 = max col + 1``."""
    rows, cols = masks.any(2), masks.any(1)
    ar_h, ar_w = torch.arange(masks.shape[1]), torch.arange(masks.shape[2])
    big = masks.shape[1] + masks.shape[2]
    y1 = torch.where(rows, ar_h, big).amin(1)
    y2 = torch.where(rows, ar_h, -1).amax(1) + 1
    x1 = torch.where(cols, ar_w, big).amin(1)
    x2 = torch.where(cols, ar_w, -1).amax(1) + 1
    return torch.stack([x1, y1, x2, y2], 1).float()


def box_pixels(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bool (n, H, W): the pixels each XYXY box overlaps (its rectangle rounded outwards)."""
    H, W = size
    b = boxes.as_subclass(torch.Tensor).reshape(-1, 4)
    x1, y1 = b[:, 0].floor()[:, None], b[:, 1].floor()[:, None]
    x2, y2 = b[:, 2].ceil()[:, None], b[:, 3].ceil()[:, None]
    xs, ys = torch.arange(W)[None], torch.arange(H)[None]
    return ((ys >= y1) & (ys < y2))[:, :, None] & ((xs >= x1) & (xs < x2))[:, None, :]


def _is_box_area(area: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    b = boxes.as_subclass(torch.Tensor)
    box_area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return torch.isclose(area, box_area, rtol=1e-4, atol=1e-3)


def _scaled_area(area, old_boxes, new_boxes, factor):
    """``area`` after a geometric change: the new box area where the set's area is the box area,
    else ``area * factor`` (the share of pixels kept times the scale squared)."""
    nb = new_boxes.as_subclass(torch.Tensor)
    new_box_area = (nb[:, 2] - nb[:, 0]) * (nb[:, 3] - nb[:, 1])
    return torch.where(_is_box_area(area, old_boxes), new_box_area, area * factor).float()


def place_objects(src_img: torch.Tensor, src_t: dict, pick, scale: float, flip: bool, offset: tuple[int, int],
                  size: tuple[int, int]) -> tuple[torch.Tensor, dict, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The objects ``pick`` of ``(src_img, src_t)`` flipped, resized by ``scale`` and placed with
    their image's top-left corner at ``offset = (y, x)`` on a canvas of ``size`` (negative:
    cropped; uncovered: 0). Returns ``(image, objects, boxes, masks, kept_share)``: the placed
    image, the picked objects still visible (at least ``MIN_PIXELS`` pixels, or a box of that
    area), their new XYXY boxes (tight boxes of the placed masks; boxes-only: the boxes clamped
    to the canvas), their placed masks (boxes-only: the box rectangles) and the share of each
    one's resized pixels (box area) left inside the canvas."""
    H, W = size
    with_masks = "masks" in src_t
    src = select_objects(src_t, pick)
    h, w = src_img.shape[-2:]
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    top, left = -int(offset[0]), -int(offset[1])
    img = tv_tensors.Image(src_img)
    img = TF.horizontal_flip(img) if flip else img
    if (nh, nw) != (h, w):
        img = TF.resize(img, [nh, nw], antialias=True).clamp_(0.0, 1.0)
    img = TF.crop(img, top, left, H, W).as_subclass(torch.Tensor)
    if len(src["labels"]) == 0:
        return img, src, torch.zeros(0, 4), torch.zeros(0, H, W, dtype=torch.bool), torch.zeros(0)
    boxes = src["boxes"]
    masks = src["masks"] if with_masks else None
    if flip:
        boxes = TF.horizontal_flip(boxes)
        masks = TF.horizontal_flip(masks) if with_masks else None
    if (nh, nw) != (h, w):
        boxes = TF.resize(boxes, [nh, nw])
        masks = TF.resize(masks, [nh, nw]) if with_masks else None
    sized_boxes = boxes.as_subclass(torch.Tensor).clone()
    boxes = TF.crop(boxes, top, left, H, W)  # clamped to the canvas
    if with_masks:
        sized_pixels = masks.as_subclass(torch.Tensor).flatten(1).sum(1).float()
        masks = TF.crop(masks, top, left, H, W).as_subclass(torch.Tensor).bool()
        pixels = masks.flatten(1).sum(1).float()
        keep = pixels >= MIN_PIXELS
        masks, pixels, sized_pixels = masks[keep], pixels[keep], sized_pixels[keep]
        new_boxes = tight_boxes(masks)
        kept_share = pixels / sized_pixels
    else:
        b = boxes.as_subclass(torch.Tensor)
        box_area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1]) & (box_area >= MIN_PIXELS)
        new_boxes = b[keep]
        masks = box_pixels(new_boxes, (H, W))
        sb = sized_boxes[keep]
        kept_share = box_area[keep] / ((sb[:, 2] - sb[:, 0]) * (sb[:, 3] - sb[:, 1]))
    return img, select_objects(src, keep), new_boxes, masks, kept_share


def jitter_scene(img: torch.Tensor, target: dict, scale: float, flip: bool,
                 offset: tuple[int, int]) -> tuple[torch.Tensor, dict]:
    """The whole image ``(img, target)`` flipped, resized by ``scale`` and placed at ``offset`` on
    its own canvas size (cropped / padded with 0): Simple Copy-Paste's jitter of the destination
    image. Objects left with fewer than ``MIN_PIXELS`` visible pixels leave the target; the others
    get their new boxes, masks and ``area`` (as :func:`paste_objects`); ``occlusion`` is kept
    (truncation at the canvas edge is not occlusion)."""
    H, W = img.shape[-2:]
    every = torch.ones(len(target["labels"]), dtype=torch.bool)
    placed, objects, boxes, masks, kept_share = place_objects(img, target, every, scale, flip, offset, (H, W))
    out = dict(objects)
    out["boxes"] = tv_tensors.BoundingBoxes(boxes.float(), format="XYXY", canvas_size=(H, W))
    out["area"] = _scaled_area(objects["area"], objects["boxes"], boxes, scale * scale * kept_share)
    if "masks" in target:
        out["masks"] = tv_tensors.Mask(masks.to(torch.uint8))
    return placed.to(img.dtype), out


def paste_objects(dst_img: torch.Tensor, dst_t: dict, src_img: torch.Tensor, src_t: dict, pick,
                  scale: float = 1.0, flip: bool = False, offset: tuple[int, int] = (0, 0),
                  min_visible: float = 0.0) -> tuple[torch.Tensor, dict, dict]:
    """Paste the objects ``pick`` (bool mask or indices) of ``(src_img, src_t)`` onto
    ``(dst_img, dst_t)``; returns ``(image, target, stats)``.

    The source is flipped (``flip``), resized by ``scale`` (bilinear, antialiased; masks
    nearest) and placed with its top-left corner at ``offset = (y, x)`` on the destination
    canvas (negative: cropped), the output keeping the destination's size and dtype.

    * With masks (both targets have ``masks``): the pasted pixels are the union of the picked
      objects' (visible) masks; a pasted object's box is the tight box of its placed mask.
      Destination objects lose the covered pixels of their masks; a changed one gets the tight
      box of what is left; a covered one left with fewer than ``max(MIN_PIXELS, min_visible *
      visible before)`` pixels is dropped (an untouched one is always kept).
    * Boxes only: each picked object's box follows the geometry (tv_tensors, clamped to the
      canvas) and the pixels it overlaps are pasted (the box rectangle); a destination object
      keeps its box and is dropped only when its rectangle is (nearly, as above) covered.

    Destination ``occlusion`` becomes ``1 - (1 - occlusion) * visible_after / visible_before``
    (the share of the full object now hidden, when the old occlusion was exact). Pasted objects
    keep their source ``occlusion``, ``labels``, ``difficult``, and get ``synthetic=True``;
    truncation at the canvas edge is not counted as occlusion (VOC's truncated vs occluded).
    ``area``: where it equals the box area (the digit scenes' and VOC's convention) it is the
    new box area; otherwise (COCO's segment area) it is scaled by ``scale**2`` and the share of
    pixels kept at the canvas edge (pasted) or by the visible share (destination, with masks).
    """
    H, W = dst_img.shape[-2:]
    with_masks = "masks" in dst_t and "masks" in src_t
    if ("masks" in dst_t) != ("masks" in src_t):
        raise ValueError("copy-paste: source and destination targets must both have masks or neither")
    stats = {"pasted": 0, "dropped": 0}
    img, src, new_boxes, masks, kept_share = place_objects(src_img, src_t, pick, scale, flip, offset, (H, W))
    n_new = len(src["labels"])
    if n_new == 0:
        return dst_img, dst_t, stats
    covered = masks.any(0)

    # the destination's objects under the paste
    n_old = len(dst_t["labels"])
    old = dst_t["masks"].as_subclass(torch.Tensor).bool() if with_masks else box_pixels(dst_t["boxes"], (H, W))
    before = old.flatten(1).sum(1).float()
    visible = old & ~covered
    after = visible.flatten(1).sum(1).float()
    survive = (after == before) | ((after >= MIN_PIXELS) & (after >= min_visible * before))
    share = torch.where(before > 0, after / before.clamp(min=1), torch.ones_like(before))
    old_boxes = dst_t["boxes"].as_subclass(torch.Tensor)
    if with_masks:
        changed = after < before
        recomputed = old_boxes.clone()
        if changed.any():
            recomputed[changed & survive] = tight_boxes(visible[changed & survive])
        old_area = _scaled_area(dst_t["area"], old_boxes, recomputed, share)
    else:
        recomputed, old_area = old_boxes, dst_t["area"]
    old_occlusion = 1.0 - (1.0 - dst_t["occlusion"]) * share

    out = {k: v for k, v in dst_t.items() if k not in OBJECT_KEYS and k != "masks"}
    s = survive
    out["boxes"] = tv_tensors.BoundingBoxes(torch.cat([recomputed[s], new_boxes]).float(), format="XYXY",
                                            canvas_size=(H, W))
    out["labels"] = torch.cat([dst_t["labels"][s], src["labels"]])
    out["area"] = torch.cat([old_area[s], _scaled_area(src["area"], src["boxes"], new_boxes,
                                                       scale * scale * kept_share)])
    out["occlusion"] = torch.cat([old_occlusion[s], src["occlusion"]]).float()
    out["difficult"] = torch.cat([dst_t["difficult"][s], src["difficult"]])
    out["synthetic"] = torch.cat([dst_t["synthetic"][s], torch.ones(n_new, dtype=torch.bool)])
    if with_masks:
        out["masks"] = tv_tensors.Mask(torch.cat([visible[s], masks]).to(torch.uint8))
    image = dst_img.clone()
    where = covered.to(image.device)[None].expand_as(image)
    image[where] = img.to(device=image.device, dtype=image.dtype)[where]
    stats = {"pasted": n_new, "dropped": int(n_old - int(s.sum()))}
    return image, out, stats


@register_method
class CopyPaste(Method):
    """Simple Copy-Paste on each training batch: every image (the destination) is paired with
    another image of the batch (the source, drawn uniformly, seeded); the source is scale
    jittered (a factor drawn uniformly in ``[scale_min, scale_max]``; the paper's large scale
    jitter is 0.1-2.0, the default 0.5-1.5 is a moderate version that keeps the small canvases'
    objects above a few pixels), flipped horizontally with probability 1/2 only when ``flip``
    (off by default: digits are not flip-safe, a flipped 2 is not a 2) and placed at a uniform
    random offset (cropped / padded to the destination's size, as the paper's jitter crops /
    pads); then each of its objects is pasted with probability ``paste_p`` using its instance
    mask, or its box rectangle when the set has no masks (VOC, COCO boxes). See
    :func:`paste_objects` for what happens to boxes, masks, ``occlusion`` and ``area``. As in the
    paper both images are jittered, each with its own draw: the destination too is flipped (when
    ``flip``), rescaled and placed at a random offset on its canvas (:func:`jitter_scene`) before the
    paste (``jitter_destination``, default on; off gives version 1's source-only jitter).

    Occlusion: a destination object that the paste leaves with fewer than ``max(MIN_PIXELS,
    min_visible * its visible pixels)`` is dropped. The paper removes only fully occluded objects:
    ``min_visible`` 0 (the default since version 2; version 1 dropped objects below 5 % visible)
    keeps every object with at least ``MIN_PIXELS`` (4) visible pixels -- fewer than that is a
    box no detector here can localise, so imbench drops it as fully occluded.

    ``rare_only``: paste only objects of the recipe's minority classes (``ctx.minority``; the
    LVIS-style rare group when the recipe names none), the class-aware variant long-tail
    detection papers use. Notes ``copy_paste`` (objects pasted and dropped so far).

    Segmentation (:mod:`.region_paste`): rare-class regions pasted into other images of the batch --
    each minority class (``ctx.minority``; every class but the most frequent when the recipe names
    none) present in the jittered source is pasted with probability ``paste_p``, all its pixels
    with their exact labels (``rare_only`` is implied: pasting background or frequent classes is not
    the method the issue names). ``flip`` and ``min_visible`` concern objects and are unused here.
    """

    name = "copy-paste"
    family = "baseline"
    tracks = ("detection", "segmentation")
    summary = "Simple Copy-Paste: paste masked objects of another batch image, scale jittered 0.5-1.5"
    reference = ("Ghiasi, Cui, Srinivas, Qian, Lin, Cubuk, Le & Zoph, Simple Copy-Paste is a Strong Data "
                 "Augmentation Method for Instance Segmentation, CVPR 2021")
    defaults = {"paste_p": 0.5, "scale_min": 0.5, "scale_max": 1.5, "flip": False, "min_visible": 0.0,
                "rare_only": False, "jitter_destination": True}
    version = 2  # both images jittered, objects dropped only when (nearly) fully occluded

    _gen: torch.Generator | None = None

    def check(self) -> None:
        p = self.params
        if not 0.0 <= float(p["paste_p"]) <= 1.0:
            raise UsageError(f"method 'copy-paste': paste_p must be in [0, 1], got {p['paste_p']}")
        if not 0.0 < float(p["scale_min"]) <= float(p["scale_max"]) <= MAX_SCALE:
            raise UsageError(f"method 'copy-paste': need 0 < scale_min <= scale_max <= {MAX_SCALE}, "
                             f"got {p['scale_min']}, {p['scale_max']}")
        if not 0.0 <= float(p["min_visible"]) < 1.0:
            raise UsageError(f"method 'copy-paste': min_visible must be in [0, 1), got {p['min_visible']}")

    def on_epoch(self, epoch: int, ctx: Context) -> None:
        if epoch == 0 or self._gen is None:
            self._gen = ctx.generator(self.name)
            self._stats = {"pasted": 0, "dropped": 0}

    def _classes(self, ctx: Context) -> torch.Tensor | None:
        if not self.params["rare_only"]:
            return None
        return torch.tensor(list(ctx.minority) or ctx.frequency_groups["rare"], dtype=torch.int64)

    def augment(self, batch, ctx: Context):
        if ctx.track == "segmentation":
            return self._augment_regions(batch, ctx)
        images, targets = batch
        if self._gen is None:
            self.on_epoch(0, ctx)
        g, p = self._gen, self.params
        n = len(images)
        if n < 2:
            return list(images), list(targets)
        classes = self._classes(ctx)
        out_i, out_t = [], []
        for i in range(n):
            j = (i + 1 + int(torch.randint(n - 1, (1,), generator=g))) % n
            scale, flip, offset = self._jitter(images[i].shape[-2:], images[j].shape[-2:], g)
            labels = targets[j]["labels"]
            pick = torch.rand(len(labels), generator=g) < float(p["paste_p"])
            if classes is not None:
                pick &= torch.isin(labels, classes)
            dst_img, dst_t = images[i], targets[i]
            if p["jitter_destination"]:
                dst_img, dst_t = jitter_scene(dst_img, dst_t, *self._jitter(dst_img.shape[-2:], dst_img.shape[-2:], g))
            img, t, stats = paste_objects(dst_img, dst_t, images[j], targets[j], pick, scale, flip,
                                          offset, float(p["min_visible"]))
            out_i.append(img)
            out_t.append(t)
            for k in self._stats:
                self._stats[k] += stats[k]
        ctx.note("copy_paste", dict(self._stats))
        return out_i, out_t


    def _jitter(self, canvas, source, g: torch.Generator) -> tuple[float, bool, tuple[int, int]]:
        """One large-scale-jitter draw: a scale in ``[scale_min, scale_max]``, a flip (only when
        ``flip``) and a uniform offset of the ``source``-sized image rescaled on the ``canvas``."""
        lo, hi = float(self.params["scale_min"]), float(self.params["scale_max"])
        scale = lo + (hi - lo) * float(torch.rand(1, generator=g))
        flip = bool(torch.rand(1, generator=g) < 0.5) and bool(self.params["flip"])
        u = torch.rand(2, generator=g).tolist()
        offset = tuple(_offset(u_k, size, round(src * scale)) for u_k, size, src in zip(u, canvas, source))
        return scale, flip, offset

    def _augment_regions(self, batch, ctx: Context):
        x, y = batch
        if self._gen is None:
            self.on_epoch(0, ctx)
        most = int(torch.tensor(ctx.instance_counts).argmax())
        rare = list(ctx.minority) or [c for c in range(ctx.num_classes) if c != most]
        p = self.params
        x, y, n = paste_regions(x, y, torch.tensor(rare, dtype=torch.int64), self._gen, paste_p=float(p["paste_p"]),
                                scale_min=float(p["scale_min"]), scale_max=float(p["scale_max"]),
                                ignore_index=int(ctx.ignore_index if ctx.ignore_index is not None else 255),
                                jitter_destination=bool(p["jitter_destination"]))
        self._stats["pasted"] += n
        ctx.note("copy_paste", {"regions_pasted": self._stats["pasted"], "classes": rare})
        return x, y
