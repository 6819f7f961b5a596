"""`d3ip sample`: unconditional samples from a prior, as a PNG montage and/or NIfTI."""

from __future__ import annotations

from pathlib import Path

from ..errors import OptionError
from ._common import HelpFormatter, add_device_option

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


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
    import math
    import sys

    import numpy as np
    from tqdm import tqdm

    from ..core.prior import load_prior, resolve_device
    from ..core.sampling import montage, sample_prior
    from ..io.files import OutputError, check_output, same_file
    from ..io.volumes import NIFTI_SUFFIXES
    from ._common import say

    if not 1 <= args.n <= 4096:
        raise OptionError(f"--n must be between 1 and 4096, got {args.n}")
    if not 1 <= args.nfe <= 1000:
        raise OptionError(f"--nfe must be between 1 and 1000 (the schedule's T), got {args.nfe}")
    if not (math.isfinite(args.eta) and 0.0 <= args.eta <= 1.0):
        raise OptionError(f"--eta must be in [0, 1], got {args.eta}")
    if not 0 <= args.seed <= 2**63 - 1:  # torch's generators take no more
        raise OptionError(f"--seed must be an integer in 0..2**63-1, got {args.seed}")
    prior_files = []
    if str(args.prior).endswith((".safetensors", ".json")) or "/" in str(args.prior):
        p = Path(args.prior)
        prior_files = [("prior weights", p.with_suffix(".safetensors")),
                       ("prior card", p.with_suffix(".json"))]
    outs = [check_output(args.out, suffixes=IMAGE_SUFFIXES, inputs=prior_files,
                         force=args.force, what="montage")]
    if args.nifti:
        outs.append(check_output(args.nifti, suffixes=NIFTI_SUFFIXES, inputs=prior_files,
                                 force=args.force, what="NIfTI stack", option="--nifti"))
        if same_file(outs[0], outs[1]):
            raise OutputError("--out and --nifti name the same file")
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

    from ..io.files import atomic_path

    with atomic_path(outs[0]) as tmp:
        plt.imsave(tmp, montage(x), cmap="gray", vmin=0, vmax=1)
    if args.nifti:
        from ..io.volumes import write_volume

        write_volume(args.nifti, x[:, 0].clamp(0, 1).numpy().astype(np.float32), np.eye(4),
                     overwrite=args.force)
    print(f"wrote {args.n} samples of {prior.name} to {', '.join(map(str, outs))}")
    return 0
