"""bf16 auto|on|off: bf16 only where the hardware computes it natively."""

from __future__ import annotations

import warnings

import pytest

from napari_d3ip.core.precision import (
    PrecisionWarning,
    cpu_has_bf16,
    normalize_bf16_mode,
    resolve_bf16,
)

AVX2 = frozenset({"avx2", "fma"})
XEON = frozenset({"avx2", "avx512f", "avx512_bf16"})


@pytest.mark.parametrize("mode, device, flags, expected", [
    ("auto", "cpu", AVX2, False),
    ("auto", "cpu", XEON, True),
    ("auto", "cpu", frozenset({"amx_bf16"}), True),
    ("off", "cpu", XEON, False),
    ("on", "cpu", XEON, True),
    ("auto", "cuda", AVX2, True),
    ("off", "cuda", AVX2, False),
])
def test_resolve_bf16(mode, device, flags, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_bf16(mode, device, flags=flags) is expected


def test_forcing_bf16_on_an_avx2_cpu_warns():
    with pytest.warns(PrecisionWarning, match="many times slower"):
        assert resolve_bf16("on", "cpu", flags=AVX2) is True


def test_modes_and_legacy_booleans():
    assert [normalize_bf16_mode(m) for m in (True, False, None, "AUTO", "on", "false")] == \
        ["on", "off", "off", "auto", "on", "off"]
    with pytest.raises(ValueError, match="auto, on, off"):
        normalize_bf16_mode("fast")
    assert cpu_has_bf16(AVX2) is False and cpu_has_bf16(XEON) is True
