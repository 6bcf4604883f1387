"""Batch summaries of PyTorch tensors, computed on the tensor's device.

Only the per-feature results (five numbers per feature) and, for outputs,
the per-row confidence are copied to the host, so a batch on a GPU is never
copied whole. torch is imported only when a tensor arrives.

NOTE: the repository's tests skip this module's paths when torch is not
installed, which is the case on the machines that run them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from otel_mlmon.stats.summary import FeatureSummary


def is_tensor(value: Any) -> bool:
    """Tell whether ``value`` is a torch tensor, without importing torch."""
    return type(value).__module__.startswith("torch") and hasattr(value, "dim")


def _widened(tensor: Any) -> Any:
    # Integers are summarised in float64, and half precision in float32.
    import torch

    if not tensor.is_floating_point():
        return tensor.to(torch.float64)
    if tensor.element_size() < 4:
        return tensor.to(torch.float32)
    return tensor


def summarise_tensor(values: Any) -> FeatureSummary:
    """Summarise the columns of a 2-D tensor as ``summarise_dense`` does.

    NaN and ±inf count as nulls and are left out of the other statistics.
    A feature with no finite value gets 0 there, so every value is finite.
    """
    import torch

    with torch.no_grad():
        data = _widened(values.detach())
        finite = torch.isfinite(data)
        counts = finite.sum(dim=0)
        safe_counts = counts.clamp(min=1).to(data.dtype)
        zero = torch.zeros((), dtype=data.dtype, device=data.device)
        mean = torch.where(finite, data, zero).sum(dim=0) / safe_counts
        centred = torch.where(finite, data - mean, zero)
        std = torch.sqrt((centred * centred).sum(dim=0) / safe_counts)
        high_fill = torch.full_like(data, float("inf"))
        low = torch.where(finite, data, high_fill).amin(dim=0)
        high = torch.where(finite, data, -high_fill).amax(dim=0)
        empty = counts == 0
        stacked = torch.stack(
            [
                torch.where(empty, zero, mean),
                torch.where(empty, zero, std),
                torch.where(empty, zero, low),
                torch.where(empty, zero, high),
                (data.shape[0] - counts).to(data.dtype),
            ]
        )
        host = stacked.to(device="cpu", dtype=torch.float64).numpy()
    return FeatureSummary(
        mean=host[0].tolist(),
        std=host[1].tolist(),
        min=host[2].tolist(),
        max=host[3].tolist(),
        null_count=host[4].astype(np.int64).tolist(),
    )


def tensor_output(result: Any) -> tuple[Any, dict[str, float] | None]:
    """Read a tensor output on its device.

    The first item is the per-row confidence as a float64 numpy array when
    the output is a 2-D tensor of probabilities (values in [0, 1], rows
    summing to 1), else None. The second is the mean, std, min and max of
    the finite values when the output is not probabilities.
    """
    import torch

    with torch.no_grad():
        data = _widened(result.detach())
        if data.dim() == 2 and data.shape[0] and data.shape[1] > 1:
            in_range = bool(((data >= 0) & (data <= 1)).all())
            sums = data.sum(dim=1)
            ones = torch.ones_like(sums)
            if in_range and bool(torch.allclose(sums, ones, atol=1e-3)):
                confidence = data.amax(dim=1)
                host = confidence.to(device="cpu", dtype=torch.float64)
                return host.numpy(), None
        finite = data[torch.isfinite(data)]
        if finite.numel() == 0:
            return None, {}
        mean = finite.mean()
        spread = torch.sqrt(((finite - mean) ** 2).mean())
        stats = torch.stack([mean, spread, finite.min(), finite.max()])
        values = stats.to(device="cpu", dtype=torch.float64).tolist()
    return None, {
        "mean": values[0],
        "std": values[1],
        "min": values[2],
        "max": values[3],
    }
