"""`d3ip simulate`: turn a volume into a measurement file (sparse-view CT or undersampled MRI).

The volume is scaled to [0, 1] (the prior's range; the original intensity range and the
affine are stored in the file), measured slice by slice with the chosen operator and saved in
the HDF5 layout of `napari_d3ip.io.measurements` together with the reference volume.
"""

from __future__ import annotations

import math
import shlex
from typing import Any

from ..operators import KINDS, MASK_PATTERNS, SIMULATION_DEFAULTS
from ..sample_data import volume_samples
from ._common import SV_CT_VIEWS, HelpFormatter, add_device_option

DEFAULT_ACCEL = {k: v["accel"] for k, v in SIMULATION_DEFAULTS.items() if "accel" in v}
DEFAULT_MASK = {k: v["mask"] for k, v in SIMULATION_DEFAULTS.items() if "mask" in v}
DEFAULT_NOISE = {k: v["noise"] for k, v in SIMULATION_DEFAULTS.items()}  # paper settings


def register(sub) -> None:
    p = sub.add_parser(
        "simulate", help="simulate a CT/MRI measurement file from a volume",
        formatter_class=HelpFormatter,
        description="Simulate undersampled measurements of a volume (scaled to [0, 1]) and "
                    "write them, with the reference volume and its geometry, to an HDF5 file. "
                    "Prints the quality of A†y (FBP / zero-filled), clipped to [0, 1] as every "
                    "command reports it: PSNR per-slice mean and volume, SSIM per-slice mean.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--volume", help="input volume: .nii/.nii.gz/.nrrd/.mha/.mhd or a DICOM "
                     "series folder (default: none; --volume or --sample is required)")
    src.add_argument("--sample", help=f"a shipped sample volume instead ({', '.join(volume_samples())}) "
                     "(default: none)")
    add_simulation_options(p, operator_required=True)
    p.add_argument("--seed", type=int, default=0, help="seed for the mask and the noise")
    add_device_option(p, default="cpu", help_extra="; the default cpu makes the same file on "
                      "every machine")
    p.add_argument("--out", required=True, help="output measurement file (.h5) (required)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress message")
    p.set_defaults(func=_cmd_simulate)


def add_simulation_options(p, operator_required: bool = False, file_options: bool = True) -> None:
    """Operator options shared by simulate, reconstruct (with --volume/--sample) and demo."""
    if operator_required:
        p.add_argument("--operator", required=True, choices=KINDS, help="forward model: "
                       "parallel-beam CT, single-coil MRI, multi-coil MRI with ESPIRiT maps "
                       "(required)")
    else:
        p.add_argument("--operator", choices=KINDS, default="ct", help="forward model: "
                       "parallel-beam CT, single-coil MRI, multi-coil MRI with ESPIRiT maps")
    p.add_argument("--views", type=int, default=SV_CT_VIEWS, help="CT: projection views over "
                   f"180 deg (default: {SV_CT_VIEWS}, the paper's sparse-view CT task)")
    p.add_argument("--accel", type=float, default=None,
                   help="MRI: acceleration R (default: "
                   + ", ".join(f"{v:g} for {k}" for k, v in DEFAULT_ACCEL.items()) + ")")
    acs = f"{SIMULATION_DEFAULTS['mri-multicoil']['acs_fraction'] * 100:g}%%"
    p.add_argument("--mask", choices=MASK_PATTERNS, default=None,
                   help=f"MRI sampling: 2D variable-density Poisson disc or uniform random 1D "
                        f"lines with {acs} ACS columns; a multi-coil Poisson mask keeps "
                        f"{acs} full ACS columns for ESPIRiT (default: "
                   + ", ".join(f"{v} for {k}" for k, v in DEFAULT_MASK.items()) + ")")
    p.add_argument("--coils", type=int, default=SIMULATION_DEFAULTS["mri-multicoil"]["n_coils"],
                   help="mri-multicoil: number of coils")
    p.add_argument("--noise", type=float, default=None,
                   help="relative Gaussian noise std (default: "
                   + ", ".join(f"{v:g} for {k}" for k, v in DEFAULT_NOISE.items())
                   + ": the paper's settings)")
    if file_options:
        p.add_argument("--axis", type=int, choices=[0, 1, 2], default=2,
                       help="file index axis to slice along (2 = last NIfTI axis: axial)")
        p.add_argument("--frame", type=int, default=None,
                       help="frame of a 4D volume (default: none; required for 4D files)")
        p.add_argument("--series", default=None, help="DICOM SeriesInstanceUID if the folder has "
                       "several series (default: none: the only series)")


def simulation_kwargs(args) -> dict[str, Any]:
    """The keyword arguments of `measurement_builder.build_measurement` the options give
    (None: the kind's default there)."""
    kind = args.operator
    if kind == "ct":
        return {"n_views": args.views, "noise": args.noise}
    kw = {"accel": args.accel, "mask": args.mask, "noise": args.noise}
    if kind == "mri-multicoil":
        kw["n_coils"] = args.coils
    return kw


def measure(args, device: Any = "cpu"):
    """Read --volume/--sample and simulate its measurement with the operator options: the
    one library function (`build_measurement`) after the checks that need no data."""
    from ..measurement_builder import build_measurement

    check_simulation_options(args)
    vol, source = _load_volume(args)
    check_simulation_size(args, vol.shape[1:], vol.shape[0])
    return build_measurement(vol, args.operator, seed=args.seed, device=device, source=source,
                             **simulation_kwargs(args))


def check_simulation_options(args) -> None:
    """The operator options alone, before any file is read (finite, in range)."""
    kind = args.operator
    if kind == "ct" and args.views < 1:
        raise ValueError(f"--views must be >= 1, got {args.views}")
    if args.accel is not None and (not math.isfinite(args.accel) or args.accel <= 1):
        raise ValueError(f"--accel must be > 1 (1 = fully sampled) and finite, got "
                         f"{args.accel}")
    if kind == "mri-multicoil" and args.coils < 1:
        raise ValueError(f"--coils must be >= 1, got {args.coils}")
    if args.noise is not None and (not math.isfinite(args.noise) or args.noise < 0):
        raise ValueError(f"--noise must be a finite number >= 0, got {args.noise}")
    seed = getattr(args, "seed", 0)
    if seed is not None and not 0 <= seed <= 2**63 - 1:  # torch's generators take no more
        raise ValueError(f"--seed must be an integer in 0..2**63-1, got {seed}")


def check_simulation_size(args, image_shape: tuple[int, int], n_slices: int) -> None:
    """Bound what simulating (and reconstructing) this volume needs by the memory there is."""
    from ..io.files import check_memory
    from ..io.measurements import claimed_bytes
    from ..operators.ct import default_n_det

    kind = args.operator
    h, w = image_shape
    if kind == "ct":
        meas, views, maps = (args.views, default_n_det((h, w))), args.views, None
    elif kind == "mri":
        meas, views, maps = (h, w), 0, None
    else:
        meas, views, maps = (args.coils, h, w), 0, (n_slices, args.coils, h, w)
    what = f"simulating {kind} of {n_slices} slices of {h}x{w}" + (
        f" with {args.views} views" if kind == "ct" else
        f" with {args.coils} coils" if kind == "mri-multicoil" else "")
    check_memory(claimed_bytes(kind, n_slices, (h, w), meas, views, maps) * 1.5, what)


def command_line(args, noise: float) -> str:
    """The equivalent `d3ip simulate` call with every default made explicit (for the file)."""
    parts = ["d3ip", "simulate"]
    parts += ["--sample", args.sample] if args.sample is not None else ["--volume", args.volume]
    parts += ["--operator", args.operator]
    if args.operator == "ct":
        parts += ["--views", str(args.views)]
    else:
        accel = DEFAULT_ACCEL[args.operator] if args.accel is None else args.accel
        parts += ["--accel", f"{accel:g}", "--mask", args.mask or DEFAULT_MASK[args.operator]]
        if args.operator == "mri-multicoil":
            parts += ["--coils", str(args.coils)]
    parts += ["--noise", f"{noise:g}", "--seed", str(args.seed)]
    if args.sample is None:
        parts += ["--axis", str(args.axis)]
        parts += ["--frame", str(args.frame)] if args.frame is not None else []
        parts += ["--series", args.series] if args.series is not None else []
    parts += ["--out", str(args.out)]
    return " ".join(shlex.quote(str(a)) for a in parts)


def _load_volume(args):
    from ..io.volumes import Volume, read_volume

    if args.sample is not None:
        from ..sample_data import load_sample

        vol = load_sample(args.sample)
        if not isinstance(vol, Volume):
            raise ValueError(f"--sample {args.sample} is a measurement, not a volume; use a "
                             "volume sample such as brain-64 or phantom-64")
        return vol, f"sample:{args.sample}"
    vol = read_volume(args.volume, axis=args.axis, frame=args.frame, series=args.series)
    return vol, str(args.volume)


def _cmd_simulate(args) -> int:

    import numpy as np

    from ..core.prior import resolve_device
    from ..io.files import check_output
    from ..io.measurements import MEASUREMENT_SUFFIXES, write_measurement
    from ._common import describe_quality, quality, say

    # everything that can be checked before any work: the output, the options, the device
    out = check_output(args.out, suffixes=MEASUREMENT_SUFFIXES, force=args.force,
                       what="measurement file",
                       inputs=[("input volume", args.volume)] if args.volume else [])
    check_simulation_options(args)
    kind = args.operator
    noise = DEFAULT_NOISE[kind] if args.noise is None else args.noise
    device = resolve_device(args.device)
    what = f"sample {args.sample}" if args.sample is not None else str(args.volume)
    say(f"d3ip simulate: preparing: reading {what}, simulating {kind} on {device} ...",
        getattr(args, "quiet", False))
    m = measure(args, device=device)
    m.simulation["command"] = command_line(args, noise)
    write_measurement(out, m, overwrite=args.force)
    label = "FBP" if kind == "ct" else "zero-filled"
    metrics = quality(m.pinv(), np.asarray(m.reference))
    if kind == "ct":
        sampling = f"{m.operator.params()['n_views']} views"
    else:
        sampling = f"R={m.operator.acceleration:.2f} ({m.simulation['mask']})"
    print(f"wrote {out}: {kind}, {m.n_slices} slices of {m.image_shape[0]}x{m.image_shape[1]}, "
          f"y {tuple(m.y.shape)}, {sampling}, noise {noise:g}, seed {args.seed}; "
          f"A^+y ({label}): {describe_quality(metrics, m.n_slices)}")
    return 0
