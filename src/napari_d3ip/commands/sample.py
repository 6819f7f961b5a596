"""`d3ip sample`: unconditional samples from a prior, as a PNG montage and/or NIfTI."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("sample", help="draw unconditional samples from a prior")
    p.add_argument("--prior", default="ellipses-64", help="shipped name or .safetensors path")
    p.add_argument("--n", type=int, default=16, help="number of samples")
    p.add_argument("--nfe", type=int, default=50)
    p.add_argument("--eta", type=float, default=0.85)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", default="samples.png", help="PNG montage")
    p.add_argument("--nifti", default=None, help="also write the samples as a NIfTI stack")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    import numpy as np

    from ..core.prior import load_prior, resolve_device
    from ..core.sampling import draw_samples, montage
    from ._common import check_outputs

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    outs = [Path(args.out)] + ([Path(args.nifti)] if args.nifti else [])
    check_outputs(outs, args.force)
    prior = load_prior(args.prior, resolve_device(args.device))
    print(f"sampling {args.n} images from {prior.name} ({args.nfe} steps on {prior.device})")
    x = draw_samples(prior, args.n, args.nfe, args.eta, args.seed)
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
