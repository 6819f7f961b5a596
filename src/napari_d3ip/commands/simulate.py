"""`d3ip simulate`: turn a volume into a measurement file (sparse-view CT or undersampled MRI).

The volume is scaled to [0, 1] (the prior's range; the original intensity range and the
affine are stored in the file), measured slice by slice with the chosen operator and saved in
the HDF5 layout of `napari_d3ip.io.measurements` together with the reference volume.
"""

from __future__ import annotations

import shlex
from typing import Any

from ..errors import OptionError  # noqa: F401 (re-exported: callers import it from here)
from ..operators import Setting, get_kind, kind_names
from ..operators.kinds import NOISE, all_kinds
from ..sample_data import volume_samples
from ._common import HelpFormatter, add_device_option


def _options() -> dict[str, list[tuple[str, Setting]]]:
    """Each simulation option (its dest) -> the (kind, declaration) pairs that offer it, in
    the order the kinds declare them, noise last: the options are the kinds' settings."""
    out: dict[str, list[tuple[str, Setting]]] = {}
    for k in all_kinds():
        for st in k.settings:
            if st.cli:
                out.setdefault(st.dest, []).append((k.name, st))
    noise = out.pop(NOISE.dest, None)
    return {**out, NOISE.dest: noise} if noise else out


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
    """Operator options shared by simulate, reconstruct (with --volume/--sample) and demo,
    generated from the kinds' settings: one option per setting name, its default the kinds'
    common default (None, said per kind, where they differ)."""
    kinds = kind_names()
    labels = ", ".join(f"{k}: {get_kind(k).label}" for k in kinds)
    if operator_required:
        p.add_argument("--operator", required=True, choices=kinds,
                       help=f"forward model ({labels}) (required)")
    else:
        p.add_argument("--operator", choices=kinds, default=kinds[0],
                       help=f"forward model ({labels})")
    for dest, offered in _options().items():
        st = offered[0][1]
        defaults = {k: s.default for k, s in offered}
        same = len(set(map(repr, defaults.values()))) == 1
        help_ = st.param.help.replace("%", "%%")  # argparse formats help with %
        if not same:
            help_ += " (default: " + ", ".join(f"{st.show(v)} for {k}"
                                               for k, v in defaults.items()) + ")"
        kw: dict[str, Any] = {"default": st.default if same else None, "help": help_}
        if st.param.choices:
            kw["choices"] = st.param.choices
        else:
            kw["type"] = int if st.type == "int" else float
        p.add_argument(st.flag, dest=dest, **kw)
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
    return {st.name: getattr(args, st.dest, None) for st in get_kind(args.operator).settings
            if st.cli}


def simulation_settings(args) -> dict[str, Any]:
    """The kind's checked settings the options give (defaults filled in)."""
    return get_kind(args.operator).check_settings(simulation_kwargs(args))


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
    """The operator options alone, before any file is read: every option given is checked
    by its declaration (the same rule the library and the GUI apply)."""
    get_kind(args.operator)
    for dest, offered in _options().items():
        v = getattr(args, dest, None)
        why = None if v is None else offered[0][1].problem(v)
        if why:
            raise OptionError(f"{offered[0][1].flag} {why}")
    seed = getattr(args, "seed", 0)
    if seed is not None and not 0 <= seed <= 2**63 - 1:  # torch's generators take no more
        raise OptionError(f"--seed must be an integer in 0..2**63-1, got {seed}")


def check_simulation_size(args, image_shape: tuple[int, int], n_slices: int) -> None:
    """Bound what simulating (and reconstructing) this volume needs by the memory there is."""
    from ..io.files import check_memory
    from ..io.measurements import claimed_bytes

    k = get_kind(args.operator)
    s = simulation_settings(args)
    h, w = image_shape
    meas, views, maps = k.memory_shapes(s, (h, w), n_slices)
    what = f"simulating {k.name} of {n_slices} slices of {h}x{w}" + k.size_note(s)
    check_memory(claimed_bytes(k.name, n_slices, (h, w), meas, views, maps) * 1.5, what)


def command_line(args, noise: float) -> str:
    """The equivalent `d3ip simulate` call with every default made explicit (for the file)."""
    parts = ["d3ip", "simulate"]
    parts += ["--sample", args.sample] if args.sample is not None else ["--volume", args.volume]
    parts += ["--operator", args.operator]
    s = simulation_settings(args)
    for st in get_kind(args.operator).settings:
        if st.cli and st.name != NOISE.name:
            parts += [st.flag, st.show(s[st.name])]
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
            raise OptionError(f"--sample {args.sample} is a measurement, not a volume; use a "
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
    k = get_kind(args.operator)
    kind = k.name
    noise = simulation_settings(args)[NOISE.name]
    device = resolve_device(args.device)
    what = f"sample {args.sample}" if args.sample is not None else str(args.volume)
    say(f"d3ip simulate: preparing: reading {what}, simulating {kind} on {device} ...",
        getattr(args, "quiet", False))
    m = measure(args, device=device)
    m.simulation["command"] = command_line(args, noise)
    write_measurement(out, m, overwrite=args.force)
    label = k.pinv_name
    metrics = quality(m.pinv(), np.asarray(m.reference))
    sampling = k.sampled(m)
    print(f"wrote {out}: {kind}, {m.n_slices} slices of {m.image_shape[0]}x{m.image_shape[1]}, "
          f"y {tuple(m.y.shape)}, {sampling}, noise {noise:g}, seed {args.seed}; "
          f"A^+y ({label}): {describe_quality(metrics, m.n_slices)}")
    return 0
