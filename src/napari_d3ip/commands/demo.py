"""`d3ip demo`: the main job — D3IP on the shipped brain with simulated sparse-view CT.

With no arguments: the 64³ sample brain (MNI ICBM152), 15-view parallel-beam CT with 1% noise,
D3IP-base with the `cpu-preview` preset and the shipped prior, on the best available device.
Writes the reconstruction (NIfTI), its run card, and a PNG of axial/coronal/sagittal mid-slices
of reference / FBP / result, and prints PSNR (per-slice mean and volume) and SSIM (per-slice
mean) against the reference beside FBP's, both clipped to [0, 1]. Ctrl-C writes the current
estimate as reconstruction.partial.nii.gz (+ its run card) unless --no-partial.
"""

from __future__ import annotations

from pathlib import Path

from ..sample_data import volume_samples
from ._common import HelpFormatter
from .reconstruct import add_run_options
from .simulate import add_simulation_options

DEFAULT_PRESET = "cpu-preview"


def register(sub) -> None:
    p = sub.add_parser("demo", help="run D3IP on the shipped sample brain (the main job)",
                       description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--sample", default="brain-64", help=f"sample volume ({', '.join(volume_samples())})")
    add_simulation_options(p, file_options=False)
    p.add_argument("--out", default="d3ip-demo", help="output folder")
    p.add_argument("--force", action="store_true", help="overwrite files in --out")
    p.add_argument("--no-partial", action="store_true",
                   help="on Ctrl-C, do not write the current estimate as reconstruction.partial.nii.gz")
    p.add_argument("--quiet", action="store_true", help="no progress messages or bar")
    add_run_options(p, default_preset=DEFAULT_PRESET)
    p.set_defaults(func=_cmd, volume=None, measurement=None, axis=2, frame=None, series=None)


def _cmd(args) -> int:
    import numpy as np

    from ..io.files import OutputError, check_output
    from ..io.results import save_result
    from ..pipeline import reconstruct
    from ._common import (
        Interrupted,
        describe_quality,
        orthogonal_figure,
        quality,
        report_interrupt,
        run_with_progress,
        say,
    )
    from .reconstruct import (
        check_result_outputs,
        config_from_args,
        describe_run,
        describe_source,
        load_measurement,
        protected_inputs,
    )

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; the demo writes a folder of results "
                          "(choose a folder name)")
    files = [out / "reconstruction.nii.gz", out / "reconstruction.json", out / "demo.png"]
    cfg = config_from_args(args, default_preset=DEFAULT_PRESET)
    check_result_outputs(files[0], args, cfg, option="--out")
    check_output(files[2], suffixes=(".png",), inputs=protected_inputs(args, cfg),
                 force=args.force, what="figure", option="--out")
    from ..operators import get_kind
    from .simulate import check_simulation_options, simulation_settings

    check_simulation_options(args)
    say(f"d3ip demo: preparing: {describe_source(args)}; {describe_run(cfg)} ...", args.quiet)
    m = load_measurement(args)
    out.mkdir(parents=True, exist_ok=True)
    kind = get_kind(m.operator.kind)
    sampling = kind.planned(simulation_settings(args))
    print(f"d3ip demo: {args.sample} ({m.n_slices}x{m.image_shape[0]}x{m.image_shape[1]}), "
          f"{m.operator.kind} {sampling}, {cfg.adapter} + {cfg.solver}, {cfg.nfe} NFE, "
          f"prior {cfg.prior}", flush=True)
    try:
        result = run_with_progress(reconstruct(m, cfg), f"{cfg.adapter}", args.quiet)
    except Interrupted as stop:
        report_interrupt(stop, files[0], m, cfg, args.no_partial)
        raise
    save_result(result, files[0], m.affine, m.intensity, overwrite=args.force)
    tv = _classical_answer(m, cfg)  # seconds: shown beside D3IP, as the advice recommends it
    ref = np.asarray(m.reference)
    pinv = np.clip(m.pinv(), 0, 1)
    base = quality(pinv, ref)
    got = result.metrics
    label = kind.pinv_name
    orthogonal_figure(
        {"reference": ref, label: pinv, "ADMM-TV": tv.volume, cfg.adapter: result.volume}, files[2],
        m.spacing,
        {label: f"{base['psnr']:.2f} dB (slice mean)", "ADMM-TV": f"{tv.metrics['psnr']:.2f} dB (slice mean)",
         cfg.adapter: f"{got['psnr']:.2f} dB (slice mean)"})
    secs = result.card["timings"]["total_seconds"]
    print(f"{label:>12}: {describe_quality(base, m.n_slices)}")
    print(f"{'ADMM-TV':>12}: {describe_quality(tv.metrics, m.n_slices)}  "
          f"({tv.card['timings']['total_seconds']:.0f} s; the classical answer, no prior)")
    print(f"{cfg.adapter:>12}: {describe_quality(got, m.n_slices)}  "
          f"({secs:.0f} s on {result.card['device']})")
    print(f"wrote {files[0]}, {files[1].name}, {files[2].name} in {out}/")
    return 0


def _classical_answer(m, cfg):
    """ADMM-TV on the same measurement (its task's preset, the run's device): the figure a user
    should compare D3IP's with."""
    from ..advice import CLASSICAL_PRESET
    from ..config import from_preset
    from ..pipeline import run

    return run(m, from_preset(CLASSICAL_PRESET[m.operator.kind], device=cfg.device))
