"""Random erasing: blank a random rectangle of each training image (Zhong et al. 2020)."""
from __future__ import annotations

import torch
from torchvision.transforms import v2

from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.method import register_method

SCALE_MIN = 0.02
RATIO = (0.3, 3.3)


@register_method
class RandomErasing(Method):
    """torchvision ``transforms.v2.RandomErasing(p, scale=(0.02, scale_max), ratio=(0.3, 3.3),
    value)`` applied to each image of the batch independently.

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
    summary = "Random erasing: replace a random rectangle of each image by a constant (p=0.5)"
    reference = "Zhong, Zheng, Kang, Li & Yang, Random Erasing Data Augmentation, AAAI 2020"
    defaults = {"p": 0.5, "scale_max": 0.33, "value": 0.0}

    _gen: torch.Generator | None = None

    def check(self) -> None:
        p = self.params
        if not 0.0 <= float(p["p"]) <= 1.0:
            raise UsageError(f"method 'random-erasing': p must be in [0, 1], got {p['p']}")
        if not SCALE_MIN <= float(p["scale_max"]) <= 1.0:
            raise UsageError(f"method 'random-erasing': scale_max must be in [{SCALE_MIN}, 1], got {p['scale_max']}")
        if not 0.0 <= float(p["value"]) <= 1.0:
            raise UsageError(f"method 'random-erasing': value must be in [0, 1] (images are in [0, 1]), got {p['value']}")

    def on_epoch(self, epoch: int, ctx: Context) -> None:
        if epoch == 0 or self._gen is None:
            self._gen = ctx.generator(self.name)

    def augment(self, batch, ctx: Context):
        x, y = batch
        if self._gen is None:
            self._gen = ctx.generator(self.name)
        p = self.params
        erase = v2.RandomErasing(p=float(p["p"]), scale=(SCALE_MIN, float(p["scale_max"])), ratio=RATIO,
                                 value=float(p["value"]))
        seed = int(torch.randint(0, 2**62, (1,), generator=self._gen))
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            erased = [erase(img) for img in x]
        if ctx.track == "detection":
            return erased, list(y)  # targets unchanged (torchvision passes boxes and masks through)
        return torch.stack(erased), y
