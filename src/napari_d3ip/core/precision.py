"""Which precision the UNet runs in: bf16 autocast only where the hardware has bf16 math.

On CPUs without bf16 instructions (AVX2-only AMD EPYCs, older Xeons) PyTorch emulates bf16
and a UNet forward under autocast was measured 55x slower than fp32; on Xeons with
AVX-512 BF16 / AMX it is ~1.7x faster. So the one setting is `auto | on | off`:

- `auto`: bf16 on CUDA, or on a CPU whose flags include avx512_bf16 or amx_bf16; else fp32.
- `on`: bf16 everywhere; on a CPU without bf16 instructions this warns (many times slower).
- `off`: fp32.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import torch

from ..errors import OptionError

BF16_MODES = ("auto", "on", "off")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


class PrecisionWarning(UserWarning):
    """bf16 was asked for on hardware that emulates it."""


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where that file does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (e.g. 'Intel(R) Xeon(R) Processor'), or the platform's machine."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def cpu_has_bf16(flags: frozenset[str] | None = None) -> bool:
    """True if the CPU computes bf16 natively (AVX-512 BF16 or AMX)."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in BF16_CPU_FLAGS)


def normalize_bf16_mode(mode: str | bool | None) -> str:
    """Accept auto|on|off (and legacy booleans: True -> on, False/None -> off)."""
    if mode is None or mode is False:
        return "off"
    if mode is True:
        return "on"
    m = str(mode).strip().lower()
    if m in ("true", "1", "yes"):
        return "on"
    if m in ("false", "0", "no"):
        return "off"
    if m not in BF16_MODES:
        raise OptionError(f"bf16 must be one of {', '.join(BF16_MODES)}, got {mode!r}")
    return m


def resolve_bf16(mode: str | bool | None, device: torch.device | str,
                 flags: frozenset[str] | None = None, warn: bool = True) -> bool:
    """Whether to run under bf16 autocast for `mode` on `device` (see the module docstring)."""
    m = normalize_bf16_mode(mode)
    dev = torch.device(device)
    native = dev.type == "cuda" or (dev.type == "cpu" and cpu_has_bf16(flags))
    if m == "off":
        return False
    if m == "auto":
        return native
    if not native and warn:
        warnings.warn(
            f"bf16 was forced on, but this {dev.type.upper()} ({cpu_model()}) has no bf16 "
            "instructions (avx512_bf16/amx_bf16): the network will run many times slower than "
            "in fp32 (55x measured on an AVX2 EPYC). Use --bf16 auto or off.",
            PrecisionWarning, stacklevel=2)
    return True


def describe_machine() -> str:
    """CPU model, whether it has bf16 math, cores and torch threads: for cards and benchmarks."""
    import os

    bf = "with" if cpu_has_bf16() else "without"
    return (f"{cpu_model()} ({bf} bf16 instructions), {os.cpu_count()} cores, "
            f"torch {torch.__version__}, {_plural(torch.get_num_threads(), 'thread')}")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
