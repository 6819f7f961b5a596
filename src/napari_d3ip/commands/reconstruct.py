"""`d3ip reconstruct`: reconstruct a measurement file (or a volume simulated on the fly)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import ADAPTERS, SOLVERS
from ._common import DEVICE_CHOICES, DEVICE_HELP, HelpFormatter
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
    src.add_argument("--measurement", help="measurement file (.h5) from `d3ip simulate` "
                     "(default: none; one of --measurement/--volume/--sample is required)")
    src.add_argument("--volume", help="a volume to simulate a measurement from: "
                     ".nii/.nii.gz/.nrrd/.mha/.mhd or a DICOM series folder (default: none)")
    src.add_argument("--sample", help="a shipped sample volume to simulate from (brain-64, "
                     "brain-128, phantom-64, heldout-epi) (default: none)")
    sim = p.add_argument_group("on-the-fly simulation (with --volume/--sample)")
    add_simulation_options(sim)
    add_run_options(p)
    p.add_argument("--out", required=True, help="output volume (.nii.gz); the run card is "
                   "written beside it as .json (required)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--no-partial", action="store_true",
                   help="on Ctrl-C, do not write the current estimate as <out stem>.partial.nii.gz")
    p.add_argument("--quiet", action="store_true", help="no progress messages or bar")
    p.set_defaults(func=_cmd)


def add_run_options(p, default_preset: str | None = None) -> None:
    """RunConfig options shared by reconstruct and demo (None = keep the preset's / default value).

    The defaults shown in --help are those of `default_preset` (demo: cpu-preview) or of
    RunConfig (reconstruct without --preset).
    """
    from ..config import RunConfig, from_preset, presets

    base = from_preset(default_preset) if default_preset else RunConfig()
    where = f"the {default_preset} preset's values" if default_preset else "RunConfig's defaults"

    def d(value) -> str:
        return f" (default: {'none' if value is None else value})"

    names = list(presets())
    g = p.add_argument_group(
        "reconstruction", f"An option left out keeps the value of --config or --preset if given, "
        f"else the default shown ({where}).")
    g.add_argument("--config", help="a RunConfig JSON file (e.g. a previous run card's 'config'); "
                   "options given beside it override it (default: none)")
    g.add_argument("--preset", choices=names, metavar="NAME",
                   help=f"a preset: {', '.join(names)} (see `d3ip presets`) (default: "
                   f"{default_preset or 'none: the RunConfig defaults below'})")
    g.add_argument("--solver", choices=SOLVERS, help="data-consistency solver: dds, ddnm, dps, "
                   "mbir (DiffusionMBIR), admm-tv (3D TV, no prior)" + d(base.solver))
    g.add_argument("--adapter", choices=ADAPTERS, help="adaptation of the prior during sampling "
                   "(d3ip-*: one LoRA for the volume; scd/ddip: per slice)" + d(base.adapter))
    g.add_argument("--prior", help="shipped prior name or a .safetensors path" + d(base.prior))
    g.add_argument("--nfe", type=int, help="diffusion steps (network function evaluations)"
                   + d(base.nfe))
    g.add_argument("--eta", type=float, help="stochasticity of each step in [0, 1] (0 = "
                   "deterministic DDIM)" + d(base.eta))
    g.add_argument("--cg-steps", type=int, help="conjugate-gradient steps of the data-"
                   "consistency update per diffusion step" + d(base.cg_steps))
    g.add_argument("--gamma", type=float, help="data weight: solve (I + gamma AᴴA) x = x̂0 + "
                   "gamma Aᴴy; none solves AᴴA x = Aᴴy from x̂0" + d(base.gamma))
    g.add_argument("--k", dest="k_slices", type=int, help="D3IP: slices per adaptation iteration"
                   + d(base.k_slices))
    g.add_argument("--iters", dest="adapt_iters", type=int, help="adaptation iterations per step"
                   + d(base.adapt_iters))
    g.add_argument("--lr", type=float, help="adaptation learning rate" + d(base.lr))
    g.add_argument("--window", help="adaptation window 'lo,hi' in diffusion time"
                   + d(f"{base.window_lo},{base.window_hi}"))
    g.add_argument("--lora-rank", type=int, help="rank of the LoRA adapters" + d(base.lora_rank))
    g.add_argument("--init", choices=["slerp", "noise", "pure-noise"],
                   help="start: A†y + noise interpolated across slices (slerp), A†y + independent "
                   "noise, or pure noise" + d(base.init))
    g.add_argument("--batch-slices", type=int, help="slices per UNet batch (memory against speed; "
                   "the result does not depend on it)" + d(base.batch_slices))
    g.add_argument("--seed", type=int, help="seed of the sampling noise (and of a simulated "
                   "measurement); the same seed gives the same result" + d(base.seed))
    g.add_argument("--device", choices=DEVICE_CHOICES, help=DEVICE_HELP + d(base.device))
    g.add_argument("--bf16", choices=["auto", "on", "off"], default=None,
                   help="bf16 autocast for the UNet: auto = only on CUDA or a CPU with bf16 "
                   "instructions (AVX2-only CPUs run bf16 ~55x slower); off gives the same "
                   "numbers on every CPU" + d(base.bf16))
    g.add_argument("--t-start", type=int, help="diffusion time of the A†y + noise start"
                   + d(base.t_start))
    g.add_argument("--ddnm-cg-steps", type=int, help="DDNM: CG steps of its pseudo-inverse"
                   + d(base.ddnm_cg_steps))
    g.add_argument("--dps-zeta", type=float, help="DPS: guidance step, in Landweber steps of 1/L"
                   + d(base.dps_zeta))
    g.add_argument("--admm-rho", type=float, help="DiffusionMBIR/ADMM-TV: ADMM penalty ρ"
                   + d(base.admm_rho))
    g.add_argument("--admm-lambda", type=float, help="DiffusionMBIR: weight λ of ‖D_z x‖₁"
                   + d(base.admm_lambda))
    g.add_argument("--admm-iters", type=int, help="DiffusionMBIR: ADMM iterations per step"
                   + d(base.admm_iters))
    g.add_argument("--tv-lambda", type=float, help="ADMM-TV: weight of the 3D TV" + d(base.tv_lambda))
    g.add_argument("--tv-iters", type=int, help="ADMM-TV: ADMM iterations" + d(base.tv_iters))


def config_from_args(args, default_preset: str | None = None):
    from ..config import RunConfig, from_preset

    overrides = {k: getattr(args, k, None) for k in (
        "solver", "adapter", "prior", "nfe", "eta", "cg_steps", "gamma", "k_slices",
        "adapt_iters", "lr", "lora_rank", "init", "batch_slices", "seed", "device", "bf16", "t_start",
        "ddnm_cg_steps", "dps_zeta", "admm_rho", "admm_lambda", "admm_iters", "tv_lambda", "tv_iters")}
    if getattr(args, "window", None):
        try:
            lo, hi = (int(v) for v in args.window.split(","))
        except ValueError:
            raise ValueError(f"--window must be 'lo,hi' (two integers), got {args.window!r}") from None
        overrides.update(window_lo=lo, window_hi=hi)
    if getattr(args, "config", None):
        return RunConfig.from_file(Path(args.config)).replace(**overrides)
    preset = getattr(args, "preset", None) or default_preset
    if preset:
        return from_preset(preset, **overrides)
    return RunConfig(**{k: v for k, v in overrides.items() if v is not None}).validate()


def load_measurement(args):
    """The measurement to reconstruct: read from file, or simulated from a volume."""
    if args.measurement:
        from ..io.measurements import read_measurement

        return read_measurement(args.measurement)
    from ..io.volumes import to_unit_range
    from ..operators import simulate
    from .simulate import DEFAULT_NOISE, _load_volume, operator_kwargs

    sim = argparse.Namespace(**{**vars(args), "seed": args.seed if args.seed is not None else 0})
    vol, source = _load_volume(sim)
    params, desc = operator_kwargs(sim, vol.shape[1:], vol.shape[0])
    data01, intensity = to_unit_range(vol)
    noise = DEFAULT_NOISE[sim.operator] if sim.noise is None else sim.noise
    m = simulate(data01, sim.operator, noise=noise, seed=sim.seed, **params)
    m.affine, m.spacing, m.intensity, m.source = vol.affine, vol.spacing, intensity, source
    m.simulation = {**m.simulation, **desc, "kind": sim.operator, "noise": noise,
                    "seed": sim.seed, "source": source}
    return m


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
    from ..io.volumes import WRITE_SUFFIXES
    from ..pipeline import check_card_path, run_card_path

    inputs = protected_inputs(args, cfg)
    check_output(out, suffixes=WRITE_SUFFIXES, inputs=inputs, force=args.force,
                 what="result volume", option=option)
    card = run_card_path(out)
    check_output(card, inputs=inputs, force=args.force, what="run card",
                 option=f"run card {card.name} (beside {option})")
    check_card_path(card)


def describe_source(args) -> str:
    """What `load_measurement` will do, for the "preparing" line."""
    if getattr(args, "measurement", None):
        return f"reading {args.measurement}"
    what = f"sample {args.sample}" if args.sample else str(args.volume)
    sampling = f"{args.views} views" if args.operator == "ct" else "undersampled"
    return f"simulating {args.operator} ({sampling}) of {what}"


def describe_run(cfg) -> str:
    from ..core.prior import resolve_device

    device = resolve_device(cfg.device)  # fails here, before any work, if CUDA is missing
    if cfg.solver == "admm-tv":
        return f"admm-tv ({cfg.tv_iters} iterations) on {device}"
    method = cfg.solver if cfg.adapter == "none" else f"{cfg.adapter} + {cfg.solver}"
    return f"loading prior {cfg.prior} on {device}, then {method} for {cfg.nfe} steps"


def _cmd(args) -> int:
    from ..pipeline import reconstruct, save_result
    from ._common import Interrupted, describe_quality, report_interrupt, run_with_progress, say

    out = Path(args.out)
    cfg = config_from_args(args)
    check_result_outputs(out, args, cfg)  # before any work: a bad --out is found at once
    if getattr(args, "operator", None) and not args.measurement:
        from .simulate import check_simulation_options

        check_simulation_options(args)
    say(f"d3ip reconstruct: preparing: {describe_source(args)}; {describe_run(cfg)} ...", args.quiet)
    m = load_measurement(args)
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
    print(f"{summary} -> {nii} (+ {card.name})")
    return 0
