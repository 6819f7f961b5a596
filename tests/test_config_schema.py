"""RunConfig is the one schema: every field declares itself once, validation reads it."""

from __future__ import annotations

import math

import pytest

from napari_d3ip.config import (
    NULL,
    ConfigError,
    RunConfig,
    from_preset,
    presets,
    spec,
    specs,
    user_fields,
)

NUMERIC = [s for s in specs() if s.type in ("int", "float")]
CHOICES = [s for s in specs() if s.choices]


def test_every_field_declares_itself_once():
    names = [s.name for s in specs()]
    assert names == list(RunConfig().to_dict())
    flags = [f for s in specs() for f in s.flags if f]
    assert len(flags) == len(set(flags)), "a CLI flag is declared twice"
    for s in specs():
        assert len(s.param.help) > 10, s.name
        assert s.param.gui in ("basic", "advanced", ""), s.name
        if s.name != "preset":  # set by the preset picker / --preset
            assert s.param.gui and s.flags[0], f"{s.name} has no control or no flag"
        if s.optional:
            assert s.param.none_means or s.name == "preset", f"{s.name}: what does null mean?"
    assert {"tile", "adapt_every", "meta_finetune_iters"} <= set(names)
    assert set(user_fields()) == {"prior", "device", "seed"}


def _bad_values(s):
    """Values outside the declared range of a numeric field (and NaN / infinities)."""
    p = s.param
    out = [float("nan"), float("inf"), -float("inf")]
    if p.lo is not None:
        out.append(p.lo if p.lo_open else (p.lo - 1 if s.type == "int" else p.lo - 0.5))
    if p.hi is not None:
        out.append(p.hi + 1 if s.type == "int" else p.hi + 0.5)
    if s.name == "tile":
        out.append(16)
    return out


@pytest.mark.parametrize("s", NUMERIC, ids=lambda s: s.name)
def test_numeric_fields_refuse_nan_inf_and_out_of_range(s):
    for bad in _bad_values(s):
        with pytest.raises(ConfigError, match=rf"RunConfig\.{s.name}: "):
            RunConfig(**{s.name: bad}).validate()
    # the bounds themselves are accepted (where they are not open)
    for ok in (s.param.lo, s.param.hi):
        if ok is not None and not (ok == s.param.lo and s.param.lo_open):
            v = int(ok) if s.type == "int" else float(ok)
            if s.name == "window_lo" and v > RunConfig().window_hi:
                continue
            if s.name == "window_hi" and v < RunConfig().window_lo:
                continue
            if s.name == "tile" and 0 < v < 32:
                continue
            assert getattr(RunConfig(**{s.name: v}).validate(), s.name) == v


@pytest.mark.parametrize("s", NUMERIC, ids=lambda s: s.name)
def test_a_range_error_says_what_the_field_accepts(s):
    bad = _bad_values(s)[3:] or []
    for v in bad:
        with pytest.raises(ConfigError) as e:
            RunConfig(**{s.name: v}).validate()
        assert s.accepts().removesuffix(" or null") in str(e.value)


@pytest.mark.parametrize("s", CHOICES, ids=lambda s: s.name)
def test_choice_fields_refuse_other_strings_naming_the_choices(s):
    with pytest.raises(ConfigError, match=rf"RunConfig\.{s.name}: ") as e:
        RunConfig(**{s.name: "no-such-choice"}).validate()
    if s.name != "bf16":
        assert all(c in str(e.value) for c in s.choices)


def test_pinned_messages_still_read_as_before():
    cases = {("nfe", 0): "nfe: must be an integer >= 1", ("seed", -1): "seed: must be an integer in 0",
             ("eta", 2.0): r"eta: must be in \[0, 1\]", ("dps_zeta", -1.0): "dps_zeta: must be > 0",
             ("tile", 16): r"tile: must be 0 \(whole slices\) or >= 32 pixels, got 16",
             ("gamma", -1.0): "gamma: must be > 0 or null",
             ("window_lo", 990): r"need 0 <= window_lo <= window_hi <= 999"}
    for (name, v), msg in cases.items():
        with pytest.raises(ConfigError, match=msg):
            RunConfig(**{name: v}).validate()
    with pytest.raises(ConfigError, match="d3ip-mbir runs with solver 'mbir'"):
        RunConfig(adapter="d3ip-mbir").validate()
    with pytest.raises(ConfigError, match="'full' fine-tuning is for d3ip-base/d3ip-mbir"):
        RunConfig(adapt_params="full").validate()
    assert RunConfig(device="cuda:1").validate().device == "cuda:1"


def test_relevance_is_declared():
    assert spec("dps_zeta").relevant("dps", "none") and not spec("dps_zeta").relevant("dds", "none")
    assert spec("meta_finetune_iters").relevant("dds", "d3ip-meta")
    assert not spec("meta_finetune_iters").relevant("dds", "d3ip-base")
    assert not spec("lr").relevant("dds", "none") and spec("nfe").relevant("dds", "none")
    assert "mbir" in spec("admm_iters").used_with()


@pytest.mark.parametrize("name", sorted(presets()))
def test_from_preset_is_exactly_the_preset_and_keeps_only_the_users_choices(name):
    plain = from_preset(name)
    want = {**RunConfig().to_dict(), **presets()[name]["config"], "preset": name}
    assert plain.to_dict() == RunConfig.from_dict(want).to_dict()
    current = RunConfig(prior="elsewhere.safetensors", device="cpu", seed=9, tile=64, gamma=3.0,
                        dps_zeta=0.5, meta_finetune_iters=2)
    kept = from_preset(name, keep=current)
    assert kept.to_dict() == {**plain.to_dict(), "prior": "elsewhere.safetensors",
                              "device": "cpu", "seed": 9}
    if name.startswith("mri"):
        assert kept.gamma == 5.0


def test_overrides_none_is_not_given_null_is_null():
    assert from_preset("mri3d", gamma=None).gamma == 5.0
    assert from_preset("mri3d", gamma=NULL).gamma is None
    assert RunConfig(gamma=2.0).replace(gamma=NULL, nfe=None).to_dict() == RunConfig().to_dict()
    assert math.isclose(RunConfig().replace(lr=2e-3).lr, 2e-3)
