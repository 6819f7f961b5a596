"""`d3ip sample`: unconditional samples from a prior, as a PNG montage and/or NIfTI."""

from __future__ import annotations

from pathlib import Path

from ._common import HelpFormatter, add_device_option


def register(sub) -> None:
    p = sub.add_parser("sample", help="draw unconditional samples from a prior",
                       formatter_class=HelpFormatter,
                       description="Draw unconditional samples from a diffusion prior (DDIM-type "
                       "steps from pure noise) and write them as a PNG montage (and a NIfTI stack).")
    p.add_argument("--prior", default="ellipses-64", help="shipped name or .safetensors path")
    p.add_argument("--n", type=int, default=16, help="number of samples")
    p.add_argument("--nfe", type=int, default=50, help="diffusion steps")
    p.add_argument("--eta", type=float, default=0.85, help="stochasticity of each step in [0, 1]")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise (same seed, same samples)")
    add_device_option(p)
    p.add_argument("--out", default="samples.png", help="PNG montage")
    p.add_argument("--nifti", default=None, help="also write the samples as a NIfTI stack "
                   "(default: none)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress messages or bar")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    import sys

    import numpy as np
    from tqdm import tqdm

    from ..core.prior import load_prior, resolve_device
    from ..core.sampling import montage, sample_prior
    from ._common import check_outputs, say

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    outs = [Path(args.out)] + ([Path(args.nifti)] if args.nifti else [])
    check_outputs(outs, args.force)
    device = resolve_device(args.device)
    say(f"d3ip sample: preparing: loading prior {args.prior} on {device} ...", args.quiet)
    prior = load_prior(args.prior, device)
    print(f"sampling {args.n} images from {prior.name} ({args.nfe} steps on {prior.device})",
          flush=True)
    x = None
    with tqdm(total=args.nfe, desc="sampling", unit="step", disable=args.quiet, smoothing=0,
              dynamic_ncols=True, file=sys.stderr) as bar:
        for _, total, x0 in sample_prior(prior, args.n, args.nfe, args.eta, args.seed):
            if bar.total != total:
                bar.total = total
            bar.update(1)
            x = x0  # the last yield is the sample (as core.sampling.draw_samples)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.imsave(outs[0], montage(x), cmap="gray", vmin=0, vmax=1)
    if args.nifti:
        from ..io.volumes import write_volume

        write_volume(args.nifti, x[:, 0].clamp(0, 1).numpy().astype(np.float32), np.eye(4),
                     overwrite=args.force)
    print(f"wrote {args.n} samples of {prior.name} to {', '.join(map(str, outs))}")
    return 0
