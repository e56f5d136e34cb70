"""cgan-paste: a class-conditional GAN of object crops, its rare-class objects pasted at random
places into copies of training scenes.

The survey's "conditional-GAN rare-object synthesis pasted into scenes", as what it is: cGAN crop
synthesis (Mirza & Osindero 2014, the ``cgan`` networks) plus random compositing (placement
sampled uniformly among positions that hide little of the scene, as in Dwibedi et al.'s Cut,
Paste and Learn, ICCV 2017, which pastes real cut-outs). It is **not** Tripathi et al.'s
TERSE (Learning to Generate Synthetic Data via Compositing, CVPR 2019), which pastes *real*
cut-outs and learns where to paste with a synthesizer network trained against the detector and
a realism discriminator; until imbench has that learned placement, this method carries its own
name (``gan-paste`` before, credited to Tripathi et al.).

1. **Crops.** Every non-difficult, visible-enough object of the training scenes becomes a
   ``crop_size`` x ``crop_size`` patch of ``C + 1`` channels, its image and its visible mask
   (:mod:`.object_crops`; objects with ``occlusion >= max_occlusion`` are left out).
2. **GAN.** The ``cgan`` method's conditional DCGAN (``gans/cgan.py``: projection discriminator,
   BCE loss, the profile's ``gan`` budget) is trained on those patches: ``CganPaste`` *is* a
   ``CGAN`` whose images are the crops, so build / fit / sample, the generator cache (same data,
   recipe, seed, parameters except ``blend`` / ``max_cover`` / ``per_image``, budget and code:
   the trained GAN is reused) and the collapse check are the classification GANs' own. The mask
   travels as the last channel (not thresholded from the glyph, so it works for any source):
   a generated object's mask is that channel > 127.5. ``crop_size`` 12 by default: on
   digit-scenes rare-class (n_max 60, IR 10, seed 0, CPU) 16-px crops failed the collapse check
   at the smoke budget (30 steps: sample spread 0.046 of the real one, 12 px: 0.13) and were
   worse at the quick one (400 steps: FID 16.1 vs 7.4, GAN-test 0.30 vs 0.54; 8 px: 10.2, 0.69);
   the digits themselves are 8 x 8 images.
3. **Counts.** The classes filled are ``ctx.minority`` (the ``rare`` + ``common`` frequency
   groups when the recipe names none) that have at least one crop; class ``c`` gets
   ``deficits(counts, blend)[c]`` new objects (``blend=full``: up to the largest instance count
   of the recipe's set, as the classification GANs). Hosts are copies of training images holding
   no object of a filled class (any image when none exists), so each filled class ends exactly at
   its target. Host copies bring their real objects of the other classes along, as ``ros``'s
   copies do, so those counts grow (the set above: 84 copies, the five other classes go from 189
   to about 380 objects; ``per_image`` 3 rather than 1 or 2 keeps that down, with copies of at
   most 7 objects). In the fallback (every image holds a filled class) copies can overshoot a
   target; an object that finds no place after ``4 * total + 20`` hosts is left out. The
   record's ``gan_paste`` note has the targets and the counts reached.
4. **Pasting.** Host images are a seeded uniform choice; each copy gets up to ``per_image``
   objects, their classes drawn in proportion to what each class still needs, each class's
   generated crops used in turn. An object's size
   is the box (height, width) of a real visible-enough object of its class (seeded choice; the
   square patch is stretched back to that box, so scales and aspects are the class's real ones);
   its position is uniform over the image among positions where it hides at most ``max_cover``
   of any object's visible pixels (25 tries, then another size, 3 sizes, then the next object).
   Only the generated mask's pixels are pasted. Targets follow: a new object's box is the tight
   box of its visible mask, ``area`` that box's area (digit-scenes' units), occlusion 0, flagged
   ``synthetic``; an object it partly hides gets the visible mask minus the pasted pixels, the
   tight box of what is left, ``area`` that box's area where it was the box area, else scaled by
   the share of visible pixels kept (as ``copy-paste``), and ``occlusion = 1 - visible / full``
   pixels (boxes stand in for masks on sources without them, whose targets stay
   mask-less); an object hidden entirely (possible with ``max_cover=1``) is dropped. Copies are
   flagged ``synthetic``.
5. **Sample quality.** As the classification GANs: per-class FID / KID / GAN-test
   (``quality.py``; ``fid_mean`` / ``kid_mean`` report as ``fid`` / ``kid``) of the generated
   crops' image channels against the crops of the balanced source's training scenes, on a domain
   classifier trained on those real crops (``features.py``; cached), and a real | generated PNG
   grid under ``ctx.artifacts_dir``. Skipped without a source (``ctx.source`` None) or when the
   recipe relabels classes. CAS is not computed (it is not a detection report metric).

Parameters: ``crop_size`` (12; a GAN size of ``gans/nets.py``), ``max_occlusion`` (0.3),
``max_cover`` (0.1), ``per_image`` (3), ``blend`` (full) and the ``cgan`` parameters
(``z_dim`` 64, ``width`` 64, ``sampling`` data, ``conditioning`` projection).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from ..benchmarks.contract import Context
from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.method import register_method
from ..data_recipes.imageset import ImageSet
from ..data_recipes.sceneset import SceneSet, make_target
from .base import check_collapse, deficits
from .cgan import CGAN
from .nets import layout
from .object_crops import MAX_OCCLUSION, box_pixels, object_crops, resize

MIN_VISIBLE = 4  # pixels a pasted object's mask needs (the composer's min_visible)
POSITIONS, SIZES = 25, 3


def render(crop: torch.Tensor, h: int, w: int):
    """A generated (C + 1)-channel crop resized to (h, w), trimmed to its mask's tight box:
    (pixels uint8 (C, h', w'), mask bool (h', w')), or None when the mask has < MIN_VISIBLE pixels."""
    out = resize(crop.float(), (h, w))
    mask = out[-1] > 127.5
    if int(mask.sum()) < MIN_VISIBLE:
        return None
    rows, cols = torch.nonzero(mask.any(1)).flatten(), torch.nonzero(mask.any(0)).flatten()
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return out[:-1, r0:r1, c0:c1].round().clamp(0, 255).to(torch.uint8), mask[r0:r1, c0:c1]


def tight_box(mask: torch.Tensor) -> list[float]:
    rows, cols = torch.nonzero(mask.any(1)).flatten(), torch.nonzero(mask.any(0)).flatten()
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


class Canvas:
    """A copy of one training image and its objects, with visible masks, to paste into."""

    def __init__(self, image: torch.Tensor, target: dict):
        self.image = image.clone()
        H, W = image.shape[1:]
        self.has_masks = "masks" in target
        boxes = target["boxes"].as_subclass(torch.Tensor)
        if self.has_masks:
            self.vis = target["masks"].as_subclass(torch.Tensor).bool().clone()
        else:  # the box stands in for the mask
            self.vis = torch.zeros((len(boxes), H, W), dtype=torch.bool)
            for k, box in enumerate(boxes):
                y0, y1, x0, x1 = box_pixels(box)
                self.vis[k, y0:y1, x0:x1] = True
        self.obj = {k: list(target[k]) for k in ("labels", "area", "occlusion", "difficult", "synthetic")}
        self.obj["boxes"] = list(boxes)
        occ = target["occlusion"].double()
        self.full = torch.where(occ < 1, self.vis.sum((1, 2)) / (1 - occ).clamp_min(1e-9), self.vis.sum((1, 2)))
        self.touched = [False] * len(boxes)
        self.start = self.vis.sum((1, 2)).clamp_min(1)  # visible pixels before any paste

    def labels(self) -> list[int]:
        """Classes of the objects still visible."""
        alive = self.vis.flatten(1).any(1).tolist()
        return [int(c) for c, a in zip(self.obj["labels"], alive) if a]

    def paste(self, pixels, mask, label: int, max_cover: float, rng: np.random.Generator) -> bool:
        (h, w), (H, W) = mask.shape, self.image.shape[1:]
        if h > H or w > W:
            return False
        counts = self.vis.sum((1, 2))
        for _ in range(POSITIONS):
            y, x = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
            cover = (self.vis[:, y:y + h, x:x + w] & mask).sum((1, 2))
            if (cover <= max_cover * counts).all():
                break
        else:
            return False
        region = self.image[:, y:y + h, x:x + w]
        region[:, mask] = pixels[:, mask]
        self.vis[:, y:y + h, x:x + w] &= ~mask
        self.touched = [t or bool(c) for t, c in zip(self.touched, cover.tolist())]
        new = torch.zeros((1, H, W), dtype=torch.bool)
        new[0, y:y + h, x:x + w] = mask
        self.vis = torch.cat([self.vis, new])
        self.full = torch.cat([self.full, mask.sum().double().reshape(1)])
        self.start = torch.cat([self.start, mask.sum().reshape(1)])
        box = torch.tensor(tight_box(new[0]))
        for key, value in (("labels", label), ("area", (box[2] - box[0]) * (box[3] - box[1])), ("occlusion", 0.0),
                           ("difficult", False), ("synthetic", True), ("boxes", box)):
            self.obj[key].append(torch.as_tensor(value))
        self.touched.append(False)
        return True

    def target(self) -> dict:
        """The canonical target: hidden objects dropped, partly hidden ones updated."""
        keep = [k for k in range(len(self.vis)) if bool(self.vis[k].any())]
        obj = {key: [torch.as_tensor(v[k]) for k in keep] for key, v in self.obj.items()}
        for j, k in enumerate(keep):
            if self.touched[k]:
                old = obj["boxes"][j]  # the tight box of what is left, inside the old box
                new = torch.tensor(tight_box(self.vis[k]))
                new = obj["boxes"][j] = torch.cat([torch.maximum(new[:2], old[:2]), torch.minimum(new[2:], old[2:])])
                box_area = float((old[2] - old[0]) * (old[3] - old[1]))
                if math.isclose(float(obj["area"][j]), box_area, rel_tol=1e-4, abs_tol=1e-3):  # box units
                    obj["area"][j] = (new[2] - new[0]) * (new[3] - new[1])
                else:  # e.g. COCO's mask area: scaled by the visible pixels kept
                    obj["area"][j] = obj["area"][j] * float(self.vis[k].sum() / self.start[k])
                obj["occlusion"][j] = torch.tensor(float(1 - self.vis[k].sum() / self.full[k]))
        stack = {key: torch.stack(v) if v else None for key, v in obj.items()}
        H, W = self.image.shape[1:]
        masks = self.vis[keep].to(torch.uint8) if self.has_masks else None
        return make_target(stack["boxes"] if keep else torch.zeros(0, 4), stack["labels"] if keep else [], (H, W),
                           area=stack["area"], occlusion=stack["occlusion"], difficult=stack["difficult"],
                           synthetic=stack["synthetic"], masks=masks)


@register_method
class CganPaste(CGAN):
    """Conditional DCGAN on object crops; generated rare-class objects pasted into copies of
    training scenes (see the module docstring)."""

    name = "cgan-paste"
    sampling_only = ("blend", "max_cover", "per_image")  # the pasting, not the generator: not in the cache key
    tracks = ("detection",)
    summary = "conditional GAN of object crops + masks; rare-class objects generated and pasted at random into scene copies"
    reference = ("cGAN crops (Mirza & Osindero, Conditional Generative Adversarial Nets, 2014) pasted at random "
                 "(Dwibedi, Misra & Hebert, Cut, Paste and Learn, ICCV 2017); not Tripathi et al. 2019's learned "
                 "placement")
    defaults = {**CGAN.defaults, "crop_size": 12, "max_occlusion": MAX_OCCLUSION, "max_cover": 0.1, "per_image": 3}

    def check(self) -> None:
        super().check()
        self.require(1, "per_image")
        try:
            layout((1, int(self.params["crop_size"]), int(self.params["crop_size"])))
        except UsageError as err:
            raise UsageError(f"method 'cgan-paste': crop_size {self.params['crop_size']} is not a GAN size "
                             f"({err})") from None
        if not 0.0 < float(self.params["max_occlusion"]) <= 1.0:
            raise UsageError(f"method 'cgan-paste': max_occlusion must be in (0, 1], got {self.params['max_occlusion']}")
        if not 0.0 <= float(self.params["max_cover"]) <= 1.0:
            raise UsageError(f"method 'cgan-paste': max_cover must be in [0, 1], got {self.params['max_cover']}")

    def crops(self, scenes: SceneSet):
        return object_crops(scenes, int(self.params["crop_size"]), float(self.params["max_occlusion"]))

    def prepare(self, train: SceneSet, ctx: Context) -> SceneSet:
        crops = self.crops(train)
        groups = ctx.frequency_groups
        fill = sorted(ctx.minority) if ctx.minority else sorted(groups["rare"] + groups["common"])
        learned = crops.images.counts()
        want = [n if c in fill and learned[c] else 0 for c, n in enumerate(deficits(train.instance_counts(),
                                                                                     self.params["blend"]))]
        ctx.note("gan_paste_crops", learned)
        if not sum(want) or len(crops.images) < 2:
            ctx.note("gan_paste", {"fill": fill, "skipped": "nothing to generate"})
            return train
        budget = self.gan_budget(ctx)
        generator = self._generator(crops.images, ctx, budget)
        generator.eval()
        labels = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(want)])
        fake = self._draw(generator, labels, crops.images, ctx, ctx.generator(f"{self.name}-sample"))
        check_collapse(self.name, crops.images, fake)
        out = self._paste(train, crops, fake, want, ctx)
        self._quality(fake, ctx, budget)
        return out

    def _paste(self, train: SceneSet, crops, fake: ImageSet, want: list[int], ctx: Context) -> SceneSet:
        rng = ctx.rng(f"{self.name}-paste")
        K, have = train.num_classes, np.array(train.instance_counts())
        goal = have + np.array(want)
        fill = [c for c in range(K) if want[c]]
        hosts = [i for i, t in enumerate(train.targets) if not set(t["labels"].tolist()) & set(fill)]
        hosts = hosts or list(range(len(train)))
        pool = [torch.nonzero(fake.labels == c).flatten() for c in range(K)]
        sizes = [crops.sizes[crops.images.labels == c] for c in range(K)]
        nxt = [0] * K
        images, targets, ids, pasted = [], [], [], np.zeros(K, dtype=np.int64)
        for _ in range(4 * sum(want) + 20):
            if (goal - have)[fill].max() <= 0:
                break
            i = hosts[int(rng.integers(len(hosts)))]
            canvas = Canvas(train.images[i], train.targets[i])
            done = 0
            for _slot in range(int(self.params["per_image"])):
                need = np.clip(goal - have - np.bincount(canvas.labels(), minlength=K), 0, None)[fill]
                if need.sum() <= 0:
                    break
                c = fill[int(rng.choice(len(fill), p=need / need.sum()))]
                crop = fake.images[pool[c][nxt[c] % len(pool[c])]]
                nxt[c] += 1  # the class's crops in turn, cyclically (a crop may serve twice)
                for _try in range(SIZES):
                    h, w = sizes[c][int(rng.integers(len(sizes[c])))].tolist()
                    patch = render(crop, max(1, round(h)), max(1, round(w)))
                    if patch is not None and canvas.paste(*patch, c, float(self.params["max_cover"]), rng):
                        done += 1
                        pasted[c] += 1
                        break
            if done:
                target = canvas.target()
                images.append(canvas.image)
                targets.append(target)
                ids.append(f"{train.ids[i]}-cgan-paste{len(images) - 1}")
                have = have + np.bincount(target["labels"].numpy(), minlength=K)
        ctx.note("gan_paste", {"fill": fill, "target": goal.tolist(), "reached": have.tolist(),
                               "images_added": len(images), "generated_per_class": want})
        ctx.note("synthetic_per_class", pasted.tolist())
        # the real objects the host copies bring along (ros-like duplicates of head classes)
        brought = np.zeros(K, dtype=np.int64)
        for t in targets:
            brought += np.bincount(t["labels"][~t["synthetic"]].numpy(), minlength=K)
        ctx.note("host_copy_objects_per_class", brought.tolist())
        return train.concat(images, targets, synthetic=True, ids=ids) if images else train

    def _quality(self, fake: ImageSet, ctx: Context, budget: dict) -> None:
        """FID / KID / GAN-test of the generated crops' image channels vs the source's crops."""
        from .features import domain_classifier
        from .grid import save_grid
        from .quality import sample_quality

        if ctx.source is None:
            return
        if list(ctx.source.train.class_names) != list(ctx.class_names):
            ctx.note("sample_quality_skipped", "the recipe relabels the source's classes")
            return
        C = fake.image_shape[0] - 1
        real = self.crops(ctx.source.train).images
        real = ImageSet(real.images[:, :C].contiguous(), real.labels, list(real.class_names))
        fake = ImageSet(fake.images[:, :C].contiguous(), fake.labels, list(fake.class_names), fake.synthetic)
        info = ctx.source.info
        fingerprint = json.dumps({"source": info.get("fingerprint"), "split": info.get("split"), "crops": "cgan-paste",
                                  "max_occlusion": float(self.params["max_occlusion"])}, sort_keys=True, default=str)
        classifier, hit = domain_classifier(real, device=ctx.device, cache_dir=ctx.cache_dir, seed=0,
                                            epochs=int(budget.get("feature_epochs", 15)), fingerprint=fingerprint)
        ctx.note("feature_extractor_cache", "hit" if hit else ("miss" if ctx.cache_dir else "off"))
        ctx.metrics.update(sample_quality(real, fake, classifier, device=ctx.device))
        if ctx.artifacts_dir is not None:
            path = save_grid(real, fake, Path(ctx.artifacts_dir) / f"{ctx.artifact_stem}.png", seed=ctx.seed)
            ctx.note("samples_png", str(path))
