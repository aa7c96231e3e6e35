"""Device resolution: `auto | cpu | cuda[:N]`, never assuming CUDA; whether this CPU computes bf16 natively."""
from __future__ import annotations

import logging

import torch

from dl_utils.errors import UserInputError

LOG = logging.getLogger(__name__)
_warned: set[str] = set()  # warnings given once per process


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """Map a config value to a device; `auto` picks CUDA only when it is available."""
    name = str(name).strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserInputError(
                f"device: '{name}' was requested but CUDA is not available; set `device: auto` or `device: cpu`"
            )
        if name == "cuda":
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device(name)
    raise UserInputError(f"device: unknown value '{name}'; use one of auto, cpu, cuda")


def cpu_bf16_native() -> bool | None:
    """Whether torch reports bf16 arithmetic units on this CPU (x86: AVX-512 BF16 or AMX-BF16, the
    instructions oneDNN's bf16 kernels use); None where torch reports no bf16 capability either way."""
    try:
        capabilities = torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):  # an older torch, or a CPU cpuinfo cannot read
        return None
    flags = {k: v for k, v in capabilities.items() if "bf16" in k.lower()}
    return any(bool(v) for v in flags.values()) if flags else None


def warn_if_cpu_bf16_emulated() -> None:
    """One warning per process when bf16 runs on a CPU that torch says has no bf16 units: autocast
    then emulates it, usually slower than fp32, for maps that differ from fp32's."""
    if "bf16" in _warned or cpu_bf16_native() is not False:
        return
    _warned.add("bf16")
    LOG.warning("precision bf16 on a CPU without bf16 units (torch reports neither AVX-512 BF16 nor AMX-BF16): it runs "
                "emulated, usually slower than fp32; choose precision fp32 here (what auto picks on this CPU; "
                "`uad predict --precision fp32`)")
