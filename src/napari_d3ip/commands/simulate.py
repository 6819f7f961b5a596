"""`d3ip simulate`: turn a volume into a measurement file (sparse-view CT or undersampled MRI).

The volume is scaled to [0, 1] (the prior's range; the original intensity range and the
affine are stored in the file), measured slice by slice with the chosen operator and saved in
the HDF5 layout of `napari_d3ip.io.measurements` together with the reference volume.
"""

from __future__ import annotations

import shlex
from typing import Any

KINDS = ("ct", "mri", "mri-multicoil")
DEFAULT_ACCEL = {"mri": 8.0, "mri-multicoil": 4.0}
DEFAULT_MASK = {"mri": "poisson", "mri-multicoil": "uniform1d"}
DEFAULT_NOISE = {"ct": 0.01, "mri": 0.0, "mri-multicoil": 0.01}  # paper settings
ACS_FRACTION = 0.08  # fully sampled centre columns of 1D masks (and multi-coil Poisson masks)


def register(sub) -> None:
    p = sub.add_parser(
        "simulate", help="simulate a CT/MRI measurement file from a volume",
        description="Simulate undersampled measurements of a volume (scaled to [0, 1]) and "
                    "write them, with the reference volume and its geometry, to an HDF5 file.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--volume", help="input volume: .nii/.nii.gz/.nrrd/.mha/.mhd or a DICOM "
                     "series folder")
    src.add_argument("--sample", help="a shipped sample volume instead (e.g. brain-64, "
                     "brain-128, phantom-64)")
    p.add_argument("--operator", required=True, choices=KINDS, help="forward model")
    p.add_argument("--views", type=int, default=60, help="CT: projection views over 180 deg")
    p.add_argument("--accel", type=float, default=None,
                   help="MRI: acceleration R (default 8 for mri, 4 for mri-multicoil)")
    p.add_argument("--mask", choices=["poisson", "uniform1d"], default=None,
                   help="MRI sampling: 2D variable-density Poisson disc or uniform random 1D "
                        "lines with 8%% ACS columns (default poisson for mri, uniform1d for "
                        "mri-multicoil; a multi-coil Poisson mask keeps 8%% full ACS columns "
                        "for ESPIRiT)")
    p.add_argument("--coils", type=int, default=8, help="mri-multicoil: number of coils")
    p.add_argument("--noise", type=float, default=None,
                   help="relative Gaussian noise std (default 0.01 for ct and mri-multicoil, "
                        "0 for mri)")
    p.add_argument("--seed", type=int, default=0, help="seed for the mask and the noise")
    p.add_argument("--axis", type=int, choices=[0, 1, 2], default=2,
                   help="file index axis to slice along (2 = last NIfTI axis: axial)")
    p.add_argument("--frame", type=int, default=None, help="frame of a 4D volume")
    p.add_argument("--series", default=None, help="DICOM SeriesInstanceUID if the folder has "
                   "several series")
    p.add_argument("--device", default="cpu", help="torch device for the simulation")
    p.add_argument("--out", required=True, help="output measurement file (.h5)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=_cmd_simulate)


def operator_kwargs(args, image_shape: tuple[int, int]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(parameters for `operators.simulate`, JSON-able description of the sampling)."""
    from ..operators import poisson_disc_mask, uniform_lines_mask

    kind = args.operator
    if kind == "ct":
        if args.views < 1:
            raise ValueError(f"--views must be >= 1, got {args.views}")
        return {"n_views": args.views}, {"views": args.views}
    accel = DEFAULT_ACCEL[kind] if args.accel is None else float(args.accel)
    if accel <= 1:
        raise ValueError(f"--accel must be > 1 (1 = fully sampled), got {accel}")
    mask = args.mask or DEFAULT_MASK[kind]
    kw: dict[str, Any] = {"accel": accel}
    if mask == "uniform1d" and kind == "mri":
        kw["mask"] = uniform_lines_mask(image_shape, accel, ACS_FRACTION, seed=args.seed)
    elif mask == "poisson" and kind == "mri-multicoil":
        # ESPIRiT calibrates from fully sampled columns: keep an ACS band of full height
        acs = (image_shape[0], max(2, round(ACS_FRACTION * image_shape[1])))
        kw["mask"] = poisson_disc_mask(image_shape, accel, calib=acs, seed=args.seed)
    # (otherwise simulate() draws the default pattern of the kind itself)
    desc: dict[str, Any] = {"accel": accel, "mask": mask}
    if kind == "mri-multicoil":
        if args.coils < 1:
            raise ValueError(f"--coils must be >= 1, got {args.coils}")
        kw["n_coils"] = desc["coils"] = args.coils
    return kw, desc


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
    from pathlib import Path

    import numpy as np

    from ..io.measurements import write_measurement
    from ..io.volumes import to_unit_range
    from ..metrics import psnr
    from ..operators import simulate

    out = Path(args.out)
    if out.exists() and not args.force:  # fail before any work
        raise FileExistsError(f"{out} exists; pass --force to overwrite it")
    kind = args.operator
    noise = DEFAULT_NOISE[kind] if args.noise is None else args.noise
    if noise < 0:
        raise ValueError(f"--noise must be >= 0, got {noise}")
    vol, source = _load_volume(args)
    params, desc = operator_kwargs(args, vol.shape[1:])
    data01, intensity = to_unit_range(vol)
    m = simulate(data01, kind, noise=noise, seed=args.seed, device=args.device, **params)
    m.affine, m.spacing, m.intensity, m.source = vol.affine, vol.spacing, intensity, source
    m.simulation = {**m.simulation, "kind": kind, "noise": noise, "seed": args.seed,
                    **desc, "axis": vol.axis, "source": source,
                    "command": command_line(args, noise)}
    if m.reference is None:
        m.reference = data01
    write_measurement(out, m, overwrite=args.force)
    quality = psnr(m.pinv(), np.asarray(m.reference), data_range=1.0)
    if kind == "ct":
        sampling = f"{m.operator.params()['n_views']} views"
    else:
        sampling = f"R={m.operator.acceleration:.2f} ({desc['mask']})"
    print(f"wrote {out}: {kind}, {m.n_slices} slices of {m.image_shape[0]}x{m.image_shape[1]}, "
          f"y {tuple(m.y.shape)}, {sampling}, noise {noise:g}, seed {args.seed}; "
          f"PSNR(A^+y, reference) {quality:.2f} dB")
    return 0
