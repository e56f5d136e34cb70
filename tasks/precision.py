"""Numeric precision and memory layout of the benchmarked model's forward passes.

``precision`` (a profile key, ``--precision``): ``fp32``, ``bf16`` (the model's forward -- in
training and evaluation -- under ``torch.autocast`` with bfloat16: convolutions and matrix products
in bf16, reductions and losses that autocast lists in fp32), or ``auto``: ``bf16`` where the
device computes bf16 natively (a CPU with AMX or AVX512-BF16; a CUDA device that supports bf16),
else ``fp32``. ``auto`` is resolved by the driver before the cells get their identity
(:func:`resolve_cells`), so a record always names the precision it ran in, and a bf16 cell and
an fp32 cell are different cells. A budget without the key is ``fp32``.

The tracks compute a method's loss outside autocast, on fp32 logits (``criterion`` hooks are
written for fp32; the classification and segmentation losses), except the detection heads'
own losses, which torchvision computes inside the forward (as its AMP references do); a method's
detection ``cls_loss`` gets fp32 logits.

Memory layout is not a setting: the tracks put a convolutional model and its input batches in
``channels_last`` where that is faster on the device (classification and segmentation on a CPU;
measured in ``tests/test_perf.py``) -- the same arithmetic in another order, recorded in the
training record (``memory_format``), not part of a cell's identity.
"""
from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "bf16", "fp32")


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 natively: a CPU with AMX tiles or AVX512-BF16, a CUDA
    device whose ``is_bf16_supported`` says so. Emulated bf16 is slower than fp32."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        cpu = torch.cpu
        checks = [getattr(cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
        return any(bool(check()) for check in checks if check is not None)
    return False


def resolve(precision: str, device: torch.device | str) -> str:
    """``auto`` -> ``bf16`` or ``fp32`` for ``device``; the others unchanged (checked)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def resolve_cells(cells: list[dict], device: torch.device | str) -> list[dict]:
    """The cells with every budget's ``precision: auto`` made concrete for ``device``."""
    out = []
    for cell in cells:
        budget = cell["profile"]["budget"]
        if budget.get("precision") == "auto":
            budget = {**budget, "precision": resolve("auto", device)}
            cell = {**cell, "profile": {**cell["profile"], "budget": budget}}
        out.append(cell)
    return out


def autocast(budget: dict, device: torch.device | str):
    """The context the model's forward runs in: bf16 autocast for ``precision: bf16``, else none."""
    precision = budget.get("precision", "fp32")
    if precision == "auto":  # a budget built outside the runner (tests, the plugin harness)
        precision = resolve("auto", device)
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def channels_last(device: torch.device | str) -> bool:
    """Whether the classification and segmentation tracks use ``channels_last`` on ``device``
    (a CPU: oneDNN's convolutions are 1.2-1.6x faster there; elsewhere the default layout)."""
    return torch.device(device).type == "cpu"


def memory_layout(model: torch.nn.Module, device: torch.device | str) -> torch.memory_format:
    """Put ``model`` in ``channels_last`` where :func:`channels_last` says so; the layout its input
    batches are to take."""
    if channels_last(device):
        model.to(memory_format=torch.channels_last)
        return torch.channels_last
    return torch.contiguous_format


def layout_name(layout: torch.memory_format) -> str:
    """``channels_last`` or ``contiguous`` (what a record says)."""
    return "channels_last" if layout == torch.channels_last else "contiguous"
