"""Random erasing: blank a random rectangle of each training image (Zhong et al. 2020)."""
from __future__ import annotations

import torch
from torchvision.transforms import v2

from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.method import register_method

SCALE_MIN = 0.02
RATIO = (0.3, 3.3)


def erase_one(img: torch.Tensor, erase: v2.RandomErasing, fill: float | None) -> torch.Tensor:
    """``img`` (C, H, W) with torchvision's rectangle (its coin ``p``, then ``make_params``; the
    global stream, seeded by the caller) filled with ``fill``, or uniform [0, 1] noise when None."""
    if torch.rand(1) >= erase.p:
        return img
    box = erase.make_params([img])
    if box["v"] is None:  # no rectangle fitted in 10 tries: torchvision leaves the image as it is
        return img
    i, j, h, w = box["i"], box["j"], box["h"], box["w"]
    out = img.clone()
    out[..., i:i + h, j:j + w] = (torch.rand((img.shape[0], h, w), dtype=img.dtype) if fill is None
                                  else torch.full((img.shape[0], h, w), fill, dtype=img.dtype))
    return out


@register_method
class RandomErasing(Method):
    """Random erasing with torchvision's rectangle (``transforms.v2.RandomErasing(p, scale=(0.02,
    scale_max), ratio=(0.3, 3.3))``: its coin and ``make_params``) on each image of the batch
    independently, filled as the paper's best variant, RE-R, fills it: ``value=random`` (default)
    draws each erased pixel uniformly in [0, 1] (the paper's [0, 255] on images in [0, 1]); a
    number in [0, 1] fills with that constant (RE-0 is ``value=0``, what imbench's version 1 did).
    torchvision's own ``value="random"`` draws N(0, 1), meant for normalised images: not used.

    ``classification``: the batch ``(x, y)``, labels unchanged. ``detection``: the batch
    ``(images, targets)``; one rectangle per image is drawn over the whole image (the paper's
    image-aware variant, IRE) and the targets pass through unchanged -- boxes, masks, occlusion
    and all -- as torchvision's v2 transform passes ``BoundingBoxes`` and ``Mask`` through and as
    the paper keeps the annotations: a partly (or wholly) erased object is still there, hidden.

    torchvision draws its parameters from the global CPU RNG; each batch runs inside
    ``torch.random.fork_rng`` seeded from a per-cell generator (``ctx.generator("random-erasing")``,
    created at epoch 0), so the result is deterministic for the cell's seed and the trainer's
    global RNG stream is left untouched.
    """

    name = "random-erasing"
    family = "baseline"
    tracks = ("classification", "detection")
    summary = "Random erasing: replace a random rectangle of each image by random values (p=0.5)"
    reference = "Zhong, Zheng, Kang, Li & Yang, Random Erasing Data Augmentation, AAAI 2020"
    defaults = {"p": 0.5, "scale_max": 0.33, "value": "random"}
    version = 2  # 2: random fill by default (the paper's RE-R); 1 filled with 0
    _gen: torch.Generator | None = None

    def check(self) -> None:
        p = self.params
        if not 0.0 <= float(p["p"]) <= 1.0:
            raise UsageError(f"method 'random-erasing': p must be in [0, 1], got {p['p']}")
        if not SCALE_MIN <= float(p["scale_max"]) <= 1.0:
            raise UsageError(f"method 'random-erasing': scale_max must be in [{SCALE_MIN}, 1], got {p['scale_max']}")
        if str(p["value"]) != "random":
            try:
                value = float(p["value"])
            except ValueError:
                value = float("nan")
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"method 'random-erasing': value must be 'random' or a number in [0, 1] "
                                 f"(images are in [0, 1]), got {p['value']}")
            self.params["value"] = repr(value)  # one spelling per setting: 0, 0.0 and .0 are one cell ("0.0")

    def on_epoch(self, epoch: int, ctx: Context) -> None:
        if epoch == 0 or self._gen is None:
            self._gen = ctx.generator(self.name)

    def augment(self, batch, ctx: Context):
        x, y = batch
        if self._gen is None:
            self._gen = ctx.generator(self.name)
        p = self.params
        erase = v2.RandomErasing(p=float(p["p"]), scale=(SCALE_MIN, float(p["scale_max"])), ratio=RATIO, value=0.0)
        fill = None if p["value"] == "random" else float(p["value"])
        seed = int(torch.randint(0, 2**62, (1,), generator=self._gen))
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            erased = [erase_one(img, erase, fill) for img in x]
        if ctx.track == "detection":
            return erased, list(y)  # targets unchanged (torchvision passes boxes and masks through)
        return torch.stack(erased), y
