"""`d3ip reconstruct`: reconstruct a measurement file (or a volume simulated on the fly)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import OptionError
from ._common import HelpFormatter
from .simulate import add_simulation_options


def register(sub) -> None:
    p = sub.add_parser("reconstruct", help="reconstruct a volume from a measurement",
                       formatter_class=HelpFormatter,
                       description="Reconstruct from --measurement meas.h5, or simulate from "
                       "--volume/--sample with --operator first. Writes the volume (NIfTI, the "
                       "input's affine) and its run card JSON; prints PSNR/SSIM when the file "
                       "holds a reference. Ctrl-C writes the current estimate as "
                       "<out>.partial.nii.gz (+ run card with \"interrupted\": true) unless "
                       "--no-partial.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--measurement", help="measurement file: `d3ip simulate`'s .h5, fastMRI, "
                     "ISMRMRD, Data Exchange or NXtomo, recognised by content (`d3ip inspect "
                     "FILE` describes it) (default: none; one of --measurement/--volume/--sample "
                     "is required)")
    src.add_argument("--volume", help="a volume to simulate a measurement from: "
                     ".nii/.nii.gz/.nrrd/.mha/.mhd or a DICOM series folder (default: none)")
    src.add_argument("--sample", help="a shipped sample volume to simulate from (brain-64, "
                     "brain-128, phantom-64, heldout-epi) (default: none)")
    sim = p.add_argument_group("on-the-fly simulation (with --volume/--sample)")
    add_simulation_options(sim)
    add_run_options(p)
    from ._common import add_open_options

    add_open_options(p, "reading a measurement file (with --measurement)")
    p.set_defaults(views=None)  # given or not: a file's own angles unless --views is given
    p.add_argument("--out", required=True, help="output volume (.nii.gz); the run card is "
                   "written beside it as .json (required)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--no-partial", action="store_true",
                   help="on Ctrl-C, do not write the current estimate as <out stem>.partial.nii.gz")
    p.add_argument("--quiet", action="store_true", help="no progress messages or bar")
    from ..distributed import add_distributed_option

    add_distributed_option(p)
    p.set_defaults(func=_cmd)


def _cli_type(spec):
    """The argparse type of a field: int/float/str; optional fields also take 'none'."""
    base = {"int": int, "float": float}.get(spec.type, str)
    if not spec.optional:
        return base
    from ..config import NULL

    def parse(text: str):
        return NULL if text.strip().lower() in ("none", "null") else base(text)

    parse.__name__ = base.__name__  # argparse names the type in its errors
    return parse


def _cli_help(spec, default) -> str:
    """The field's help + what it accepts + where it matters + its default."""
    p = spec.param
    text = p.help
    if spec.choices:
        text += f"; one of: {', '.join(spec.choices)}"
    elif spec.type in ("int", "float") and not p.rule:
        text += f"; {spec.accepts().removesuffix(' or null')}"
    elif p.accepts:
        text += f"; {p.accepts}"
    if spec.optional:
        text += f"; 'none': {p.none_means}"
    if spec.used_with():
        text += f"; {spec.used_with()}"
    return (text + f" (default: {spec.show(default)})").replace("%", "%%")


def add_run_options(p, default_preset: str | None = None) -> None:
    """The RunConfig options of reconstruct and demo, generated from RunConfig's declarations
    (`config.specs()`): flag, type, choices, help, default. None = not given: the value of
    --config or --preset if given, else the default shown (`default_preset`'s values for
    demo, RunConfig's for reconstruct without --preset)."""
    import argparse

    from ..config import RunConfig, from_preset, presets, specs

    base = from_preset(default_preset) if default_preset else RunConfig()
    where = f"the {default_preset} preset's values" if default_preset else "RunConfig's defaults"
    names = list(presets())
    g = p.add_argument_group(
        "reconstruction", f"An option left out keeps the value of --config or --preset if given, "
        f"else the default shown ({where}).")
    g.add_argument("--config", help="a RunConfig JSON file (e.g. a previous run card's 'config'); "
                   "options given beside it override it (default: none)")
    from ..advice import CLASSICAL_PRESET, recommended_preset

    real = "; ".join(f"{kind}: {recommended_preset(kind)}" for kind in CLASSICAL_PRESET)
    g.add_argument("--preset", choices=names, metavar="NAME",
                   help=f"a preset: {', '.join(names)} (see `d3ip presets`). For real data "
                   f"start with {real} (measured on real brains; sv-ct-best / mri3d-best are "
                   "D3IP's best there) (default: "
                   f"{default_preset or 'none: the RunConfig defaults below'})")
    for spec in specs():
        if not spec.flags[0]:  # `preset`: set by --preset, not by hand
            continue
        kw = {"dest": spec.name, "default": None,
              "help": _cli_help(spec, getattr(base, spec.name))}
        if spec.type == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = _cli_type(spec)
            if spec.choices:
                kw["choices"] = spec.choices
        g.add_argument(*spec.flags, **kw)
    g.add_argument("--window", help="adaptation window 'lo,hi' in diffusion time: "
                   "--window-lo and --window-hi at once (default: "
                   f"{base.window_lo},{base.window_hi})")


def config_from_args(args, default_preset: str | None = None):
    """The RunConfig the options describe: --config, else --preset (or `default_preset`), else
    RunConfig's defaults; the options given override it (the same `from_preset` as the GUI)."""
    from ..config import RunConfig, from_preset, specs

    overrides = {s.name: getattr(args, s.name, None) for s in specs() if s.flags[0]}
    if getattr(args, "window", None):
        try:
            lo, hi = (int(v) for v in args.window.split(","))
        except ValueError:
            raise OptionError(f"--window must be 'lo,hi' (two integers), got {args.window!r}") from None
        overrides["window_lo"] = lo if overrides["window_lo"] is None else overrides["window_lo"]
        overrides["window_hi"] = hi if overrides["window_hi"] is None else overrides["window_hi"]
    if getattr(args, "config", None):
        return RunConfig.from_file(Path(args.config)).replace(**overrides)
    preset = getattr(args, "preset", None) or default_preset
    if preset:
        return from_preset(preset, **overrides)
    return RunConfig().replace(**overrides)


def load_measurement(args):
    """The measurement to reconstruct: read from file, or simulated from a volume (the seed
    of the run, 0 if not given, also seeds the simulation)."""
    if args.measurement:
        from ..io import open_measurement
        from ._common import open_options_from_args, stage_progress

        return open_measurement(args.measurement, open_options_from_args(args),
                                progress=stage_progress("d3ip reconstruct", getattr(args, "quiet", False)))
    from .simulate import measure

    return measure(argparse.Namespace(**{**vars(args),
                                         "seed": args.seed if args.seed is not None else 0}))


def protected_inputs(args, cfg=None) -> list[tuple[str, str | None]]:
    """The files a run reads: no output may replace them, --force or not."""
    out: list[tuple[str, str | None]] = [
        ("measurement (--measurement)", getattr(args, "measurement", None)),
        ("input volume (--volume)", getattr(args, "volume", None)),
        ("--config file", getattr(args, "config", None)),
    ]
    prior = getattr(cfg, "prior", None) if cfg is not None else getattr(args, "prior", None)
    if prior and (str(prior).endswith((".safetensors", ".json")) or "/" in str(prior)):
        p = Path(str(prior))
        out += [("prior weights", str(p.with_suffix(".safetensors"))),
                ("prior card", str(p.with_suffix(".json")))]
    return out


def check_result_outputs(out: Path, args, cfg, option: str = "--out") -> None:
    """The result volume and its run card: writable, not an input, not a foreign .json."""
    from ..io.files import check_output
    from ..io.results import check_card_path, run_card_path
    from ..io.volumes import WRITE_SUFFIXES

    inputs = protected_inputs(args, cfg)
    check_output(out, suffixes=WRITE_SUFFIXES, inputs=inputs, force=args.force,
                 what="result volume", option=option)
    card = run_card_path(out)
    where = f"run card {card.name} (beside {option})"
    check_output(card, inputs=inputs, force=True, what="run card", option=where)  # an input?
    check_card_path(card)  # then: --force cannot help with a file napari-d3ip did not write
    check_output(card, inputs=inputs, force=args.force, what="run card", option=where)


def describe_source(args) -> str:
    """What `load_measurement` will do, for the "preparing" line."""
    if getattr(args, "measurement", None):
        return f"reading {args.measurement}"
    from ..operators import get_kind
    from .simulate import simulation_settings

    what = f"sample {args.sample}" if args.sample else str(args.volume)
    sampling = get_kind(args.operator).planned(simulation_settings(args))
    return f"simulating {args.operator} ({sampling}) of {what}"


def describe_run(cfg) -> str:
    from ..core.prior import resolve_device

    device = resolve_device(cfg.device)  # fails here, before any work, if CUDA is missing
    from ..methods import get_method

    if not get_method(cfg.solver).uses_prior:
        return f"{get_method(cfg.solver).describe(cfg)} on {device}"
    method = cfg.solver if cfg.adapter == "none" else f"{cfg.adapter} + {cfg.solver}"
    return f"loading prior {cfg.prior} on {device}, then {method} for {cfg.nfe} steps"


def describe_estimate(m, cfg) -> str:
    """The prior `auto` chose and the cost model's time and memory, before the run starts
    (the run itself refuses what would not fit)."""
    from ..core.prior import resolve_device, resolve_prior_name
    from ..cost import device_memory, estimate_cost
    from ..io.files import fmt_bytes

    h, w = m.image_shape
    parts = [f"{m.n_slices} slices of {h}x{w}"]
    from ..methods import get_method

    if get_method(cfg.solver).uses_prior:
        parts.append(f"prior {resolve_prior_name(cfg.prior, m.image_shape)}"
                     + (" (auto: nearest pixel scale)" if cfg.prior == "auto" else ""))
    c = estimate_cost(m, cfg)
    device = resolve_device(cfg.device)
    sec = c["seconds"]
    when = f"{sec:.0f} s" if sec < 90 else f"{sec / 60:.0f} min"
    parts.append(f"estimate ≈ {when} on a 2-core CPU, ≈ "
                 f"{fmt_bytes(c['memory_bytes'])} of memory ({fmt_bytes(device_memory(device))} "
                 f"free on {device})")
    return "d3ip reconstruct: " + "; ".join(parts)


def _check_source_options(args) -> None:
    """File-reader options need --measurement; a simulation fills in its own defaults."""
    if args.measurement:
        return
    from ..io.formats import MASKS
    from ..operators import MASK_PATTERNS, get_kind

    given = [f for f, v in (("--slices", args.slices), ("--center-fraction", args.center_fraction),
                            ("--center", args.center), ("--bin", args.binning)) if v is not None]
    if given:
        raise OptionError(f"{', '.join(given)} read(s) a measurement file: give --measurement FILE, "
                         "or leave them out to simulate")
    if args.mask is not None and args.mask not in MASK_PATTERNS:
        raise OptionError(f"--mask {args.mask} undersamples a fully sampled file ({', '.join(MASKS)}); "
                         f"a simulation takes {', '.join(MASK_PATTERNS)}")
    for st in get_kind(args.operator).settings:  # the simulation's own defaults, made explicit
        if st.cli and getattr(args, st.dest, None) is None and st.dest != "noise":
            setattr(args, st.dest, st.default)


def _cmd(args) -> int:
    from ..io.results import save_result
    from ..pipeline import reconstruct
    from ._common import Interrupted, describe_quality, report_interrupt, run_with_progress, say

    out = Path(args.out)
    cfg = config_from_args(args)
    _check_source_options(args)
    check_result_outputs(out, args, cfg)  # before any work: a bad --out is found at once
    if getattr(args, "operator", None) and not args.measurement:
        from .simulate import check_simulation_options

        check_simulation_options(args)
    say(f"d3ip reconstruct: preparing: {describe_source(args)}; {describe_run(cfg)} ...", args.quiet)
    m = load_measurement(args)
    from ..io.files import check_destination

    check_destination(out, 4.0 * m.n_slices * m.image_shape[0] * m.image_shape[1] + 4096,
                      what="result volume")  # the size is known now: space, ulimit -f
    if not (args.config or getattr(args, "preset", None) or args.solver or args.adapter):
        from ..advice import no_method_note

        say(f"d3ip reconstruct: {no_method_note(m.operator.kind)}", args.quiet)
    say(describe_estimate(m, cfg), args.quiet)
    label = cfg.solver if cfg.adapter == "none" else f"{cfg.adapter}+{cfg.solver}"
    try:
        result = run_with_progress(reconstruct(m, cfg), f"{label} {m.operator.kind}", args.quiet)
    except Interrupted as stop:
        report_interrupt(stop, out, m, cfg, args.no_partial)
        raise
    nii, card = save_result(result, out, m.affine, m.intensity, overwrite=args.force)
    t = result.card["timings"]["total_seconds"]
    summary = f"{label}: {m.n_slices}x{m.image_shape[0]}x{m.image_shape[1]} in {t:.1f} s"
    if result.metrics:
        summary += f", {describe_quality(result.metrics, m.n_slices)}"
        if result.card.get("metrics_crop"):
            summary += " (in the reference's centre crop {}x{})".format(*result.card["metrics_crop"])
    elif "data_residual" in result.card:
        summary += f", no reference: data residual ||Ax-y||/||y|| = {result.card['data_residual']:.4f}"
        noise = result.card.get("noise_estimate", {}).get("relative_to_rms")
        if noise is not None:
            summary += f" (estimated noise sigma/rms(y) = {noise:.4f}: a fit at the noise level leaves about that)"
    print(f"{summary} -> {nii} (+ {card.name})")
    return 0
