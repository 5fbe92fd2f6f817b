"""Data movement: the one home of how long a job's input and output take to move, and what it costs.

Sizes in MB (10**6 bytes), network speeds in Mbps (10**6 bits per second), times in seconds.  The
ranking adds :func:`data_movement_s` to every predicted time and both interval bounds; the shard
planner adds it to every shard's start-up overhead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from fedopt_core.errors import PlanningError
from fedopt_core.planning.values import as_float_array

__all__ = ["DEFAULT_NETWORK_SPEED_MBPS", "FALLBACK_NETWORK_SPEED_MBPS", "data_movement_s", "transfer_time_s"]


# Sustained rate for moving a job's data into the cloud and back *over the internet*, in Mbps. This is NOT the
# instance's NIC speed: the cloud side is rarely the bottleneck. AWS, for instance, caps traffic to and from an
# internet gateway at 5 Gbps per flow (EC2 User Guide, "Amazon EC2 instance network bandwidth"), and the GPU clouds
# advertise multi-Gbps ports. What limits a research group is its own end: a shared campus or office uplink, a single
# TCP stream over a long-distance path. 100 Mbps (12.5 MB/s) is our assumption for that end, not a measurement.
DEFAULT_NETWORK_SPEED_MBPS: dict[str, float] = {
    "aws": 100.0,  # lab-side bottleneck assumption (see above); AWS itself allows up to 5 Gbps per flow
    "gcp": 100.0,  # lab-side bottleneck assumption
    "azure": 100.0,  # lab-side bottleneck assumption
    "lambda": 100.0,  # lab-side bottleneck assumption; Lambda Cloud does not charge for egress
    "nebius": 100.0,  # lab-side bottleneck assumption
    "runpod": 100.0,  # lab-side bottleneck assumption (secure-cloud data centres)
    # Vast.ai is a marketplace of third-party hosts, some on residential lines; each offer lists its measured
    # internet speed, and it varies widely, so we assume half the lab-side figure.
    "vast": 50.0,
}
# Unknown provider: assume the worst figure in the table.
FALLBACK_NETWORK_SPEED_MBPS: float = 50.0

# Words that name a provider in the table above (matched on the first word of `provider`, case-insensitive).
_PROVIDER_ALIASES: dict[str, str] = {
    "amazon": "aws",
    "ec2": "aws",
    "google": "gcp",
    "microsoft": "azure",
    "lambdalabs": "lambda",
    "vast.ai": "vast",
    "vastai": "vast",
}


def _provider_keys(provider: Any, n: int) -> pd.Series:
    if provider is None:
        return pd.Series([None] * n, dtype=object)
    if np.ndim(provider) == 0:
        provider = [provider] * n
    s = pd.Series(list(provider) if not isinstance(provider, pd.Series) else provider.to_numpy(), dtype=object)
    first = s.where(s.notna(), "").astype(str).str.strip().str.lower().str.split().str[0]
    return first.map(lambda w: _PROVIDER_ALIASES.get(w, w) if isinstance(w, str) else None)


def _default_speed_mbps(provider: Any, n: int) -> np.ndarray:
    keys = _provider_keys(provider, n)
    return keys.map(DEFAULT_NETWORK_SPEED_MBPS).fillna(FALLBACK_NETWORK_SPEED_MBPS).to_numpy(dtype=float)


def _network_speed(speed: Any, provider: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(speed used in Mbps, True where it is the provider default)."""
    given = as_float_array(speed if speed is not None else np.nan, "network_speed_mbps", n)
    bad = ~np.isnan(given) & ~(given > 0)
    if bad.any():
        raise PlanningError(
            "network_speed_mbps", f"must be positive, got {given[bad][0]!r} (leave it empty for the default)"
        )
    is_default = np.isnan(given)
    used = np.where(is_default, _default_speed_mbps(provider, n), given)
    return used, is_default


def transfer_time_s(
    input_size_mb: Any,
    output_size_mb: Any,
    network_speed_mbps: Any,
    provider: Any = None,
) -> np.ndarray:
    """Seconds to move ``input_size_mb`` in and ``output_size_mb`` out at ``network_speed_mbps``.

    Vectorised over arrays or Series (scalars broadcast). A missing (NaN) speed falls back to
    ``DEFAULT_NETWORK_SPEED_MBPS[provider]`` or ``FALLBACK_NETWORK_SPEED_MBPS``; a missing size counts as 0 MB
    (nothing known to move). Sizes are in MB (10**6 bytes) and speeds in Mbps (10**6 bits/s): 8 bits per byte.
    """
    lengths = [np.size(x) for x in (input_size_mb, output_size_mb, network_speed_mbps) if x is not None]
    if provider is not None and np.ndim(provider) > 0:
        lengths.append(len(provider))
    n = max(lengths) if lengths else 1
    sizes = []
    for name, value in (("input_size_mb", input_size_mb), ("output_size_mb", output_size_mb)):
        arr = as_float_array(value if value is not None else np.nan, name, n)
        if arr.size != n:
            raise PlanningError(name, f"has {arr.size} values, expected {n}")
        if (arr < 0).any():
            raise PlanningError(name, f"must not be negative, got {arr[arr < 0][0]!r}")
        if np.isinf(arr).any():
            raise PlanningError(name, "must be finite")
        sizes.append(np.nan_to_num(arr, nan=0.0))
    speed, _ = _network_speed(network_speed_mbps, provider, n)
    if speed.size != n:
        raise PlanningError("network_speed_mbps", f"has {speed.size} values, expected {n}")
    return (sizes[0] + sizes[1]) * 8.0 / speed


def data_movement_s(task: Mapping[str, Any], platforms: pd.DataFrame) -> np.ndarray:
    """Seconds to move the task's input and output over each platform's network.

    THE single place where data movement enters a ranking or a plan: ``input_size_mb`` in and
    ``output_size_mb`` out at the platform's ``network_speed_mbps`` (the provider's documented
    default, :data:`DEFAULT_NETWORK_SPEED_MBPS`, when unknown).  The ranking adds it to the
    predicted time and both interval bounds, so deadlines and costs include it; the shard planner
    adds it to every shard's start-up overhead.
    """
    n = len(platforms)
    speed = (
        platforms["network_speed_mbps"]
        if "network_speed_mbps" in platforms
        else pd.Series(np.nan, index=platforms.index)
    )
    provider = platforms["provider"] if "provider" in platforms else pd.Series(None, index=platforms.index)
    return np.asarray(
        transfer_time_s(
            np.full(n, float(task.get("input_size_mb") or 0.0)),
            np.full(n, float(task.get("output_size_mb") or 0.0)),
            speed.to_numpy(),
            provider.to_numpy(),
        ),
        dtype=float,
    )
