"""`d3ip reconstruct`: reconstruct a measurement file (or a volume simulated on the fly)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import ADAPTERS, SOLVERS


def register(sub) -> None:
    p = sub.add_parser("reconstruct", help="reconstruct a volume from a measurement",
                       description="Reconstruct from --measurement meas.h5, or simulate from "
                       "--volume/--sample with --operator first. Writes the volume (NIfTI, the "
                       "input's affine) and its run card JSON; prints PSNR/SSIM when the file "
                       "holds a reference.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--measurement", help="measurement file (.h5) from `d3ip simulate`")
    src.add_argument("--volume", help="a volume to simulate a measurement from")
    src.add_argument("--sample", help="a shipped sample volume to simulate from (brain-64, ...)")
    sim = p.add_argument_group("on-the-fly simulation (with --volume/--sample)")
    sim.add_argument("--operator", choices=["ct", "mri", "mri-multicoil"], default="ct")
    sim.add_argument("--views", type=int, default=60)
    sim.add_argument("--accel", type=float, default=None)
    sim.add_argument("--mask", choices=["poisson", "uniform1d"], default=None)
    sim.add_argument("--coils", type=int, default=8)
    sim.add_argument("--noise", type=float, default=None)
    sim.add_argument("--axis", type=int, choices=[0, 1, 2], default=2)
    sim.add_argument("--frame", type=int, default=None)
    sim.add_argument("--series", default=None)
    add_run_options(p)
    p.add_argument("--out", required=True, help="output volume (.nii.gz); the run card is "
                   "written beside it as .json")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd)


def add_run_options(p) -> None:
    """RunConfig options shared by reconstruct and demo (None = keep preset/default)."""
    g = p.add_argument_group("reconstruction")
    g.add_argument("--config", help="a RunConfig JSON file (e.g. a previous run card's 'config')")
    g.add_argument("--preset", help="a preset name (see `d3ip presets`)")
    g.add_argument("--solver", choices=SOLVERS)
    g.add_argument("--adapter", choices=ADAPTERS)
    g.add_argument("--prior", help="shipped prior name or a .safetensors path")
    g.add_argument("--nfe", type=int)
    g.add_argument("--eta", type=float)
    g.add_argument("--cg-steps", type=int)
    g.add_argument("--gamma", type=float)
    g.add_argument("--k", dest="k_slices", type=int, help="D3IP: slices per adaptation iteration")
    g.add_argument("--iters", dest="adapt_iters", type=int, help="adaptation iterations per step")
    g.add_argument("--lr", type=float, help="adaptation learning rate")
    g.add_argument("--window", help="adaptation window 'lo,hi' in diffusion time")
    g.add_argument("--lora-rank", type=int)
    g.add_argument("--init", choices=["slerp", "noise", "pure-noise"])
    g.add_argument("--batch-slices", type=int)
    g.add_argument("--seed", type=int)
    g.add_argument("--device", choices=["auto", "cpu", "cuda"])
    g.add_argument("--bf16", choices=["auto", "on", "off"], default=None,
                   help="bf16 autocast for the UNet: auto = only on CUDA or a CPU with bf16 "
                   "instructions (AVX2-only CPUs run bf16 ~55x slower); default off (the same "
                   "numbers on every CPU)")
    g.add_argument("--t-start", type=int, help="diffusion time of the A†y + noise start (default 980)")
    g.add_argument("--ddnm-cg-steps", type=int, help="DDNM: CG steps of its pseudo-inverse")
    g.add_argument("--dps-zeta", type=float, help="DPS: guidance step, in Landweber steps of 1/L")
    g.add_argument("--admm-rho", type=float, help="DiffusionMBIR/ADMM-TV: ADMM penalty ρ")
    g.add_argument("--admm-lambda", type=float, help="DiffusionMBIR: weight λ of ‖D_z x‖₁")
    g.add_argument("--admm-iters", type=int, help="DiffusionMBIR: ADMM iterations per step")
    g.add_argument("--tv-lambda", type=float, help="ADMM-TV: weight of the 3D TV")
    g.add_argument("--tv-iters", type=int, help="ADMM-TV: ADMM iterations")


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
        return RunConfig.from_json(Path(args.config)).replace(**overrides)
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
    params, desc = operator_kwargs(sim, vol.shape[1:])
    data01, intensity = to_unit_range(vol)
    noise = DEFAULT_NOISE[sim.operator] if sim.noise is None else sim.noise
    m = simulate(data01, sim.operator, noise=noise, seed=sim.seed, **params)
    m.affine, m.spacing, m.intensity, m.source = vol.affine, vol.spacing, intensity, source
    m.simulation = {**m.simulation, **desc, "kind": sim.operator, "noise": noise,
                    "seed": sim.seed, "source": source}
    return m


def _cmd(args) -> int:
    from ..pipeline import reconstruct, run_card_path, save_result
    from ._common import check_outputs, run_with_progress

    out = Path(args.out)
    check_outputs([out, run_card_path(out)], args.force)
    cfg = config_from_args(args)
    m = load_measurement(args)
    label = cfg.solver if cfg.adapter == "none" else f"{cfg.adapter}+{cfg.solver}"
    result = run_with_progress(reconstruct(m, cfg), f"{label} {m.operator.kind}", args.quiet)
    nii, card = save_result(result, out, m.affine, m.intensity, overwrite=args.force)
    t = result.card["timings"]["total_seconds"]
    summary = f"{label}: {m.n_slices}x{m.image_shape[0]}x{m.image_shape[1]} in {t:.1f} s"
    if result.metrics:
        summary += (f", PSNR {result.metrics['psnr']:.2f} dB, SSIM {result.metrics['ssim']:.3f}"
                    f" (volume PSNR {result.metrics['volume_psnr']:.2f} dB)")
    print(f"{summary} -> {nii} (+ {card.name})")
    return 0
