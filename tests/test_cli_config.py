"""The CLI's RunConfig options are generated from RunConfig's declarations: every field can be
set, every option's help shows its default and choices, the old flag names still work."""

from __future__ import annotations

import argparse

import pytest

from napari_d3ip.cli import build_parser
from napari_d3ip.commands.reconstruct import config_from_args
from napari_d3ip.config import RunConfig, from_preset, presets, specs

R = ["reconstruct", "--measurement", "m.h5", "--out", "r.nii.gz"]


def other_value(s, base: RunConfig):
    """A valid value of field `s` other than `base`'s, and the fields it needs beside it."""
    v = getattr(base, s.name)
    extra: dict = {}
    if s.name == "adapt_params":
        return "full", {"adapter": "d3ip-base"}
    if s.choices:
        return next(c for c in s.choices if c != v and c not in ("d3ip-mbir", "cuda")), extra
    if s.type == "bool":
        return not v, extra
    if s.type == "str":
        return "some/prior.safetensors", extra
    p = s.param
    if v is None:
        return (3 if s.type == "int" else 2.5), extra
    if s.name == "tile":
        return 64, extra
    if s.type == "int":
        new = v - 1 if p.hi is not None and v + 1 > p.hi else v + 1
        if s.name == "window_hi":
            new = v - 1
        return new, extra
    new = v * 2 if p.hi is None or v * 2 <= p.hi else v / 2
    return new, extra


def _parse(argv):
    parser = build_parser()
    return parser.parse_args(argv)


def _subparser(name):
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


CLI_FIELDS = [s for s in specs() if s.flags[0]]


@pytest.mark.parametrize("s", CLI_FIELDS, ids=lambda s: s.name)
@pytest.mark.parametrize("command", ["reconstruct", "demo"])
def test_every_field_can_be_set_from_the_cli(s, command):
    base = RunConfig() if command == "reconstruct" else from_preset("cpu-preview")
    value, extra = other_value(s, base)
    argv = R if command == "reconstruct" else ["demo"]
    if s.type == "bool":
        opt = [s.flags[0] if value else "--no-" + s.flags[0][2:]]
    else:
        opt = [s.flags[0], str(value)]
    for k, v in extra.items():
        opt += ["--" + k.replace("_", "-"), str(v)]
    args = _parse([*argv, *opt])
    got = config_from_args(args, default_preset=None if command == "reconstruct" else "cpu-preview")
    assert got == base.replace(**{s.name: value}, **extra)


def test_every_flag_alias_sets_its_field():
    for s in CLI_FIELDS:
        for flag in s.flags[1:]:
            value, extra = other_value(s, RunConfig())
            got = config_from_args(_parse([*R, flag, str(value)]))
            assert getattr(got, s.name) == value, flag


def test_adapt_every_and_meta_finetune_iters_are_reachable():
    cfg = config_from_args(_parse([*R, "--adapter", "d3ip-meta", "--adapt-every", "3",
                                   "--meta-finetune-iters", "4"]))
    assert (cfg.adapt_every, cfg.meta_finetune_iters) == (3, 4)
    cfg = config_from_args(_parse([*R, "--meta-finetune-iters", "none"]))
    assert cfg.meta_finetune_iters is None


def test_old_flag_names_keep_working():
    cfg = config_from_args(_parse([*R, "--k", "3", "--iters", "2", "--window", "100,900",
                                   "--cg-steps", "7", "--batch-slices", "4", "--t-start", "500"]))
    assert (cfg.k_slices, cfg.adapt_iters, cfg.window_lo, cfg.window_hi) == (3, 2, 100, 900)
    assert (cfg.cg_steps, cfg.batch_slices, cfg.t_start) == (7, 4, 500)
    # an explicit --window-lo beats --window
    cfg = config_from_args(_parse([*R, "--window", "100,900", "--window-lo", "50"]))
    assert (cfg.window_lo, cfg.window_hi) == (50, 900)


def test_gamma_none_clears_a_presets_gamma():
    assert config_from_args(_parse([*R, "--preset", "mri3d"])).gamma == 5.0
    assert config_from_args(_parse([*R, "--preset", "mri3d", "--gamma", "none"])).gamma is None
    assert config_from_args(_parse([*R, "--preset", "mri3d"])) == from_preset("mri3d")


def test_config_file_then_options(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(RunConfig(nfe=7, tile=64, keep_optimizer=True, adapter="d3ip-base").to_json())
    cfg = config_from_args(_parse([*R, "--config", str(path), "--tile", "0",
                                   "--no-keep-optimizer"]))
    assert (cfg.nfe, cfg.tile, cfg.keep_optimizer) == (7, 0, False)


@pytest.mark.parametrize("command", ["reconstruct", "demo"])
def test_every_run_option_shows_its_default_and_choices(command):
    sub = _subparser(command)
    base = RunConfig() if command == "reconstruct" else from_preset("cpu-preview")
    by_dest = {a.dest: a for a in sub._actions}
    for s in CLI_FIELDS:
        action = by_dest[s.name]
        text = action.help
        assert f"(default: {s.show(getattr(base, s.name))})" in text, (s.name, text)
        for c in s.choices or ():
            assert c in text, (s.name, c)
        assert action.default is None  # left out: --config / --preset / the default decide
    sub.format_help()


def test_bad_values_are_refused_with_the_fields_name():
    for argv, msg in (([*R, "--tile", "16"], "tile"), ([*R, "--gamma", "nan"], "gamma"),
                      ([*R, "--adapt-every", "0"], "adapt_every"),
                      ([*R, "--meta-finetune-iters", "-1"], "meta_finetune_iters")):
        with pytest.raises(ValueError, match=msg):
            config_from_args(_parse(argv))
    with pytest.raises(SystemExit):
        _parse([*R, "--bf16", "maybe"])


def test_presets_listed():
    for n in presets():
        assert n in _subparser("reconstruct")._option_string_actions["--preset"].help
