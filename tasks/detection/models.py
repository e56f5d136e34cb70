"""Detection models from torchvision, built without downloads and sized for small images.

``fcos`` (default), ``retinanet`` and ``faster-rcnn`` use torchvision's detectors
(``weights=None``, no backbone weights) on :class:`SmallBackbone`, a 4-stage CNN with a
feature pyramid (strides 4, 8, 16; 32 channels; FCOS's head with 2 convolutions per branch
instead of 4) for 64-128 px inputs; ``*-resnet18`` use a
ResNet-18 FPN backbone (``weights_backbone=None``) for larger images on a GPU.
``min_size`` / ``max_size`` are the input size (torchvision's 800 / 1333 default would resize a
64 px canvas 12x); Faster R-CNN gets CPU-sized RPN / ROI settings (pre/post-NMS top-n 200 / 100
in training, 100 / 50 in testing, 64 ROIs per image, a 128-wide two-layer box head).

The box-classification loss is replaceable, the same way on every model (see ``losses.py``):
each model's classification head calls ``detector.cls_loss(logits, classes)`` with
``classes`` (M,) in {-1 = background, 0..K-1} and ``logits`` (M, K) for the sigmoid heads (FCOS,
RetinaNet) or (M, K+1) for Faster R-CNN's softmax head (column 0 is background); the loss
returns a sum, normalised like the detector's own (by the foreground count for the dense
heads, by the number of sampled ROIs for Faster R-CNN). ``detector.roi_feature_hook`` (Faster
R-CNN) sees and may change the pooled ROI features of the sampled proposals in training, with
their classes (adversarial dropout, ASDN); ``detector.roi_enhance_hook(features, proposals,
classes)`` sees them in training *and* evaluation, with the proposal boxes per image and, in
training, the sampled ROIs' classes (-1 background; None in evaluation) (feature super-resolution
of small objects, Perceptual GAN); ``detector.roi_scores(logits) -> scores`` replaces Faster
R-CNN's softmax when detections are scored (EQLv2's sigmoid scores).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.fcos import FCOSHead
from torchvision.models.detection.retinanet import RetinaNetClassificationHead, RetinaNetHead
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign, sigmoid_focal_loss
from torchvision.ops import boxes as box_ops

from ...benchmarks.contract.errors import UsageError
from ...benchmarks.contract.registry import Registry

ClsLoss = Callable[[Tensor, Tensor], Tensor]


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallBackbone(nn.Module):
    """A small CNN with an FPN: a stride-2 stem, then levels ``"0"``, ``"1"``, ``"2"`` at strides 4,
    8, 16 (widths 32, 64, 64; 32 FPN channels): on 64 px digit scenes about as accurate as twice
    the width with a full-resolution stem (AP 0.16-0.17 for erm on rare-class, one seed) and
    3x faster."""

    def __init__(self, in_channels: int, width: int = 16, out_channels: int = 32):
        super().__init__()
        w = width
        self.stem = _conv(in_channels, w, 2)
        self.c2 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w, 1))
        self.c3 = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w, 1))
        self.c4 = nn.Sequential(_conv(4 * w, 4 * w, 2), _conv(4 * w, 4 * w, 1))
        self.fpn = FeaturePyramidNetwork([2 * w, 4 * w, 4 * w], out_channels)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> "OrderedDict[str, Tensor]":
        c2 = self.c2(self.stem(x))
        c3 = self.c3(c2)
        c4 = self.c4(c3)
        return self.fpn(OrderedDict([("0", c2), ("1", c3), ("2", c4)]))


def _resnet18_backbone(in_channels: int) -> nn.Module:
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    if in_channels != 3:
        raise UsageError("the resnet18 detectors need RGB images; use fcos, retinanet or faster-rcnn")
    return resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5,
                               returned_layers=[2, 3, 4])


# ------------------------------------------------------------------ heads with a replaceable loss

def focal_sum(logits: Tensor, classes: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """torchvision's sigmoid focal loss (what FCOS and RetinaNet train with), summed."""
    target = torch.zeros_like(logits)
    fg = classes >= 0
    target[fg, classes[fg]] = 1.0
    return sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma, reduction="sum")


def ce_sum(logits: Tensor, classes: Tensor) -> Tensor:
    """Softmax cross-entropy over background + K classes (Faster R-CNN's own loss), summed."""
    return nn.functional.cross_entropy(logits, classes + 1, reduction="sum")


class _LossSlot:
    """Where a head finds the classification loss: the detector sets ``cls_loss`` on itself."""

    owner: "Detector | None" = None

    def _cls_loss(self, default: ClsLoss) -> ClsLoss:
        fn = self.owner.cls_loss if self.owner is not None else None
        return fn if fn is not None else default


class ImbFCOSHead(_LossSlot, FCOSHead):
    """FCOS's head; its classification term goes through the detector's ``cls_loss``."""

    def compute_loss(self, targets, head_outputs, anchors, matched_idxs):
        losses = super().compute_loss(targets, head_outputs, anchors, matched_idxs)
        fn = self._cls_loss(focal_sum)
        if fn is focal_sum:
            return losses
        classes = torch.stack([_matched_classes(t["labels"], m) for t, m in zip(targets, matched_idxs)])
        fg = int((classes >= 0).sum())
        logits = head_outputs["cls_logits"]
        losses["classification"] = fn(logits.reshape(-1, logits.shape[-1]).float(), classes.reshape(-1)) / max(1, fg)
        return losses


def _matched_classes(labels: Tensor, matched: Tensor) -> Tensor:
    """Per-anchor classes: the matched object's label, -1 for background, -2 between thresholds."""
    out = labels[matched.clip(min=0)] if len(labels) else matched.new_zeros(matched.shape)
    return torch.where(matched < 0, matched.clamp(min=-2, max=-1), out)


class ImbRetinaNetClassificationHead(_LossSlot, RetinaNetClassificationHead):
    """RetinaNet's classification head; its loss goes through the detector's ``cls_loss``
    (anchors between the IoU thresholds ignored, per-image normalisation, as torchvision)."""

    def compute_loss(self, targets, head_outputs, matched_idxs):
        fn = self._cls_loss(focal_sum)
        losses = []
        for t, logits, matched in zip(targets, head_outputs["cls_logits"], matched_idxs):
            classes = _matched_classes(t["labels"], matched)
            valid = matched != self.BETWEEN_THRESHOLDS
            losses.append(fn(logits[valid].float(), classes[valid]) / max(1, int((matched >= 0).sum())))
        return sum(losses) / len(targets)


class ImbRoIHeads(RoIHeads):
    """Faster R-CNN's box head (boxes only); in training the classification loss goes through the
    detector's ``cls_loss`` and the pooled ROI features through its ``roi_feature_hook``; in
    training and evaluation alike they pass its ``roi_enhance_hook`` first."""

    owner: "Detector | None" = None

    def _pooled(self, features, proposals, image_shapes, labels=None):
        box_features = self.box_roi_pool(features, proposals, image_shapes)
        enhance = self.owner.roi_enhance_hook if self.owner is not None else None
        return box_features if enhance is None else enhance(box_features, proposals, labels)

    def postprocess_detections(self, class_logits, box_regression, proposals, image_shapes):
        """torchvision's, with the per-class scores from the detector's ``roi_scores`` (ROI logits
        (N, K+1) -> scores (N, K+1), column 0 background) where a method sets it; softmax otherwise.
        The steps are torchvision's own: decode, clip, drop the background column, score
        threshold, small boxes, per-class NMS, top detections (tested equal to torchvision's with
        softmax scores)."""
        score = self.owner.roi_scores if self.owner is not None else None
        if score is None:
            return super().postprocess_detections(class_logits, box_regression, proposals, image_shapes)
        num_classes = class_logits.shape[-1]
        per_image = [len(p) for p in proposals]
        boxes_all = self.box_coder.decode(box_regression, proposals).split(per_image, 0)
        scores_all = score(class_logits).split(per_image, 0)
        out_boxes, out_scores, out_labels = [], [], []
        for boxes, scores, shape in zip(boxes_all, scores_all, image_shapes):
            boxes = box_ops.clip_boxes_to_image(boxes, shape)
            labels = torch.arange(num_classes, device=class_logits.device).view(1, -1).expand_as(scores)
            boxes, scores, labels = boxes[:, 1:].reshape(-1, 4), scores[:, 1:].reshape(-1), labels[:, 1:].reshape(-1)
            keep = torch.where(scores > self.score_thresh)[0]
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = box_ops.remove_small_boxes(boxes, min_size=1e-2)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = box_ops.batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
            out_boxes.append(boxes[keep])
            out_scores.append(scores[keep])
            out_labels.append(labels[keep])
        return out_boxes, out_scores, out_labels

    def forward(self, features, proposals, image_shapes, targets=None):
        if not self.training:
            box_features = self._pooled(features, proposals, image_shapes)
            class_logits, box_regression = self.box_predictor(self.box_head(box_features))
            boxes, scores, labels = self.postprocess_detections(class_logits, box_regression, proposals, image_shapes)
            return [{"boxes": b, "labels": lab, "scores": sc} for b, sc, lab in zip(boxes, scores, labels)], {}
        proposals, _, labels, regression_targets = self.select_training_samples(proposals, targets)
        box_features = self._pooled(features, proposals, image_shapes, torch.cat(labels) - 1)
        hook = self.owner.roi_feature_hook if self.owner is not None else None
        if hook is not None:
            box_features = hook(box_features, torch.cat(labels) - 1)
        class_logits, box_regression = self.box_predictor(self.box_head(box_features))
        labels_cat = torch.cat(labels)
        _, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
        fn = self.owner.cls_loss if self.owner is not None and self.owner.cls_loss is not None else ce_sum
        loss_cls = fn(class_logits.float(), labels_cat - 1) / max(1, labels_cat.numel())
        return [], {"loss_classifier": loss_cls, "loss_box_reg": loss_box_reg}


# ------------------------------------------------------------------ the detector wrapper

class Detector(nn.Module):
    """A torchvision detector with the imbench hooks: ``forward(images, targets)`` as
    torchvision (losses in training, detections in eval); ``head`` is ``"sigmoid"`` or
    ``"softmax"``; ``cls_loss`` / ``roi_feature_hook`` / ``roi_enhance_hook`` are None (the
    detector's own) or set by a method."""

    def __init__(self, model: nn.Module, name: str, head: str):
        super().__init__()
        self.model, self.name, self.head = model, name, head
        self.cls_loss: ClsLoss | None = None
        self.roi_feature_hook: Callable[[Tensor, Tensor], Tensor] | None = None
        self.roi_enhance_hook: Callable[[Tensor, list[Tensor], Tensor | None], Tensor] | None = None
        self.roi_scores: Callable[[Tensor], Tensor] | None = None  # Faster R-CNN's evaluation scores
        for m in model.modules():
            if isinstance(m, (_LossSlot, ImbRoIHeads)):
                object.__setattr__(m, "owner", self)

    def forward(self, images, targets=None):
        """Targets and detections use labels 0..K-1 on every model (Faster R-CNN's own +1 for
        its background class is applied here and undone on its detections)."""
        if self.head != "softmax":
            return self.model(images, targets)
        if targets is not None:
            targets = [{**t, "labels": t["labels"] + 1} for t in targets]
        out = self.model(images, targets)
        if isinstance(out, list):
            out = [{**d, "labels": d["labels"] - 1} for d in out]
        return out

    def info(self) -> dict:
        return {"name": self.name, "head": self.head}


@dataclass(frozen=True)
class DetModelSpec:
    name: str
    build: Callable[..., Detector]
    summary: str
    reference: str
    tracks: tuple[str, ...] = ("detection",)


MODELS: Registry[DetModelSpec] = Registry("model")


def _backbone(kind: str, in_channels: int) -> nn.Module:
    return _resnet18_backbone(in_channels) if kind == "resnet18" else SmallBackbone(in_channels)


def _common(image_size: int, mean, std) -> dict:
    return {"min_size": image_size, "max_size": image_size, "image_mean": list(mean), "image_std": list(std)}


def build_fcos(num_classes: int, in_channels: int, image_size: int, mean, std, backbone: str = "small") -> Detector:
    bb = _backbone(backbone, in_channels)
    levels = 3 if backbone == "small" else 4  # resnet_fpn_backbone adds a pool level
    base = 4 if backbone == "small" else 8
    sizes = tuple((base * 2 ** i,) for i in range(levels))  # one size per level = its stride, as torchvision
    anchors = AnchorGenerator(sizes=sizes, aspect_ratios=((1.0,),) * levels)
    head = ImbFCOSHead(bb.out_channels, 1, num_classes, num_convs=2 if backbone == "small" else 4)
    model = FCOS(bb, num_classes, anchor_generator=anchors, head=head, score_thresh=0.05,
                 detections_per_img=100, topk_candidates=200, **_common(image_size, mean, std))
    return Detector(model, "fcos", "sigmoid")


def build_retinanet(num_classes: int, in_channels: int, image_size: int, mean, std,
                    backbone: str = "small") -> Detector:
    bb = _backbone(backbone, in_channels)
    levels = 3 if backbone == "small" else 4
    sizes = tuple(tuple(int(s * 2 ** (k / 3)) for k in range(3)) for s in (8 * 2 ** i for i in range(levels)))
    anchors = AnchorGenerator(sizes=sizes, aspect_ratios=((0.5, 1.0, 2.0),) * levels)
    head = RetinaNetHead(bb.out_channels, anchors.num_anchors_per_location()[0], num_classes,
                         norm_layer=partial(nn.GroupNorm, 32))
    head.classification_head = _swap_cls_head(head.classification_head, bb.out_channels,
                                              anchors.num_anchors_per_location()[0], num_classes)
    model = RetinaNet(bb, num_classes, anchor_generator=anchors, head=head, score_thresh=0.05,
                      detections_per_img=100, topk_candidates=200, **_common(image_size, mean, std))
    return Detector(model, "retinanet", "sigmoid")


def _swap_cls_head(old: RetinaNetClassificationHead, in_channels: int, num_anchors: int, num_classes: int):
    new = ImbRetinaNetClassificationHead(in_channels, num_anchors, num_classes, norm_layer=partial(nn.GroupNorm, 32))
    new.load_state_dict(old.state_dict())
    return new


def build_faster_rcnn(num_classes: int, in_channels: int, image_size: int, mean, std,
                      backbone: str = "small") -> Detector:
    bb = _backbone(backbone, in_channels)
    levels = 3 if backbone == "small" else 4
    names = [str(i) for i in range(levels)] if backbone == "small" else ["0", "1", "2", "3"]
    anchors = AnchorGenerator(sizes=tuple((8 * 2 ** i,) for i in range(levels)),
                              aspect_ratios=((0.5, 1.0, 2.0),) * levels)
    pool = MultiScaleRoIAlign(featmap_names=names, output_size=7, sampling_ratio=2)
    box_head = TwoMLPHead(bb.out_channels * 7 * 7, 128)
    predictor = FastRCNNPredictor(128, num_classes + 1)
    model = FasterRCNN(bb, None, rpn_anchor_generator=anchors, box_roi_pool=pool, box_head=box_head,
                       box_predictor=predictor, rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100,
                       rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50, box_batch_size_per_image=64,
                       box_detections_per_img=100, **_common(image_size, mean, std))
    model.roi_heads = ImbRoIHeads(pool, box_head, predictor, 0.5, 0.5, 64, 0.25, None, 0.05, 0.5, 100)
    return Detector(model, "faster-rcnn", "softmax")


for _name, _fn, _summary, _bb in [
    ("fcos", build_fcos, "FCOS (anchor-free, sigmoid focal head) on a small 3-level FPN CNN", "small"),
    ("retinanet", build_retinanet, "RetinaNet (9 anchors per place, sigmoid focal head) on the small FPN CNN", "small"),
    ("faster-rcnn", build_faster_rcnn, "Faster R-CNN (RPN + softmax ROI head, CPU-sized) on the small FPN CNN", "small"),
    ("fcos-resnet18", build_fcos, "FCOS on a ResNet-18 FPN (no weights; for a GPU)", "resnet18"),
    ("retinanet-resnet18", build_retinanet, "RetinaNet on a ResNet-18 FPN (no weights; for a GPU)", "resnet18"),
    ("faster-rcnn-resnet18", build_faster_rcnn, "Faster R-CNN on a ResNet-18 FPN (no weights; for a GPU)", "resnet18"),
]:
    MODELS.register(_name, DetModelSpec(_name, partial(_fn, backbone=_bb), _summary, {
        "fcos": "Tian et al., FCOS, ICCV 2019 (torchvision.models.detection.FCOS)",
        "retinanet": "Lin et al., Focal Loss for Dense Object Detection, ICCV 2017 (torchvision RetinaNet)",
        "faster-rcnn": "Ren et al., Faster R-CNN, NeurIPS 2015 (torchvision FasterRCNN)",
    }[_name.replace("-resnet18", "")]))


# the models with a softmax ROI head (what softmax losses -- seesaw, softmax focal -- and the
# ROI-feature GAN methods need)
SOFTMAX_HEAD_MODELS = ("faster-rcnn", "faster-rcnn-resnet18")
# the dense one-stage models with a sigmoid head over every location (what dense-head losses --
# equalized focal loss -- need)
DENSE_HEAD_MODELS = ("fcos", "retinanet", "fcos-resnet18", "retinanet-resnet18")


def build_detector(name: str, *, num_classes: int, in_channels: int, image_size: int, mean, std) -> Detector:
    return MODELS.get(name).build(num_classes, in_channels, image_size, mean, std)
