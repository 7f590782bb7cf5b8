"""What the machine offers tunelab's own passes: the device they run on and whether it multiplies bfloat16 natively.
Read by the config's checks (``--base-dtype bf16``) and by the runs and the advice, so it sits below them all."""

from __future__ import annotations

from pathlib import Path

import torch


def build_device() -> torch.device:
    """Where tunelab's own passes outside the Trainer run (the frozen layers' pass, the advice's features, ``evaluate``
    and ``predict`` on a saved model): the GPU when there is one."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def native_bf16(device: torch.device | None = None) -> bool:
    """Whether ``device`` multiplies bfloat16 natively (so bf16 autocast is faster, not emulated)."""
    device = device or build_device()
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(torch.cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except Exception:  # noqa: BLE001 - a private probe that moved: fall back to the CPU flags
            pass
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
