"""Classifier re-training, cRT (Kang et al., ICLR 2020, "Decoupling representation and
classifier"), as ``facebookresearch/classifier-balancing``'s ``cls_crt`` stage, inside one budget."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.method import DeferredSampling, register_method
from ..tasks.schedule import epoch_at
from .cb_sampling import check_q, class_sampling_weights


@register_method
class CRT(Method):
    """Two stages in the budget's one run, so equal total steps hold: erm's training (instance
    sampling, CE, the profile's schedule) for the first ⌊``crt_start`` · epochs⌋ epochs, then the
    linear classifier is re-initialised (PyTorch's ``nn.Linear`` initialisation, seeded), every
    other parameter frozen, and the classifier alone trained with class-balanced sampling (``q`` 0)
    to the end. Kang et al. re-train 10 epochs after 90 (``crt_start`` 0.9).

    Stage 2 starts afresh as the official ``cls_crt`` config does (a new optimizer at stage 1's
    base lr, ``CosineAnnealingLR`` to 0 stepped once per epoch): the classifier's optimizer state
    (momentum) is cleared, and the ``lr_schedule`` hook gives epoch e of the T stage-2 epochs
    lr · (1 + cos(π e / T)) / 2, lr the profile's base ``lr`` (warm-up and milestones are stage 1's).
    Weight decay and momentum are the profile's (the config's 5e-4 / 0.9 are stage 1's too). As
    their code, the frozen backbone stays in train mode (its BatchNorm statistics follow the
    class-balanced batches).
    """

    version = 2  # 2: stage 2 on its own cosine schedule with a fresh optimizer state (1: the profile's decayed lr)
    name = "crt"
    family = "baseline"
    tracks = ("classification",)
    summary = "Decoupling, cRT: erm's training, then the classifier re-trained alone with class-balanced sampling"
    reference = ("Kang, Xie, Rohrbach, Yan, Gordo, Feng & Kalantidis, Decoupling Representation and "
                 "Classifier for Long-Tailed Recognition, ICLR 2020 (cRT)")
    defaults = {"crt_start": 0.9, "q": 0.0}

    def check(self) -> None:
        s = float(self.params["crt_start"])
        if not math.isfinite(s) or not 0.0 < s < 1.0:
            raise UsageError(f"method 'crt': crt_start must be a fraction in (0, 1), got {self.params['crt_start']}")
        check_q(self.name, self.params["q"])

    def start_epoch(self, epochs: int) -> int:
        """The first epoch (0-based) of stage 2."""
        return epoch_at(self.params["crt_start"], epochs)

    def adapt_model(self, model: nn.Module, ctx: Context) -> nn.Module:
        if not isinstance(getattr(model, "classifier", None), nn.Linear):
            raise UsageError("method 'crt' needs a model whose classifier is a linear layer (model.classifier)")
        self._model = model
        return model

    def sampler(self, train, ctx: Context):
        start = self.start_epoch(ctx.epochs)
        ctx.note("crt_start_epoch", start)
        return DeferredSampling(None, class_sampling_weights(train.labels, ctx.num_classes, float(self.params["q"])),
                                start)

    def on_epoch(self, epoch: int, ctx: Context) -> None:
        if epoch != self.start_epoch(ctx.epochs):
            return
        model = self._model
        head = model.classifier
        gen = ctx.generator("crt-classifier")
        with torch.no_grad():  # nn.Linear.reset_parameters, drawn from the cell's own stream
            bound = 1.0 / math.sqrt(head.in_features)
            head.weight.copy_(torch.empty(head.weight.shape).uniform_(-bound, bound, generator=gen))
            if head.bias is not None:
                head.bias.copy_(torch.empty(head.bias.shape).uniform_(-bound, bound, generator=gen))
        head_params = {id(p) for p in head.parameters()}
        for p in model.parameters():
            if id(p) not in head_params:
                p.requires_grad_(False)
        if ctx.optimizer is not None:  # stage 2's optimizer starts afresh
            for p in head.parameters():
                ctx.optimizer.state.pop(p, None)

    def lr_schedule(self, lr: float, epoch: int, step: int, ctx: Context) -> float:
        start = self.start_epoch(ctx.epochs)
        if epoch < start:
            return lr
        return float(ctx.budget["lr"]) * (1.0 + math.cos(math.pi * (epoch - start) / (ctx.epochs - start))) / 2.0
