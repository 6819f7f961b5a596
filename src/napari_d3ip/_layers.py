"""Layer data tuples for volumes, measurements and results: the npe2 layer conversion (no Qt,
no napari import: shared by the reader, the sample data, the writer and the dock widgets).

Conventions: every layer lies on the volume's voxel grid: `scale` is the voxel spacing
(slice, row, col) in mm, and a measurement display that is not image-shaped (a sinogram's
views × detectors) is stretched over exactly the volume's extent with a scale no finer than
the voxels (detectors beyond the image width are resampled to it, nearest; the measurement
itself travels unchanged in metadata). napari's sliders step by the finest scale on each axis
and range over all layers, so every slider, in the main canvas and in the orthogonal views,
counts voxel (slice) indices of the volume and spans just the volume; the full voxel → world
affine, the file's slice axis and intensity range travel in `metadata` so a writer can put
them back. Measurement layers also carry the `Measurement` object itself, so the Reconstruct
widget reconstructs exactly what the Data widget simulated or read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# metadata keys (one place, so widgets, reader and writer agree)
AFFINE = "affine"
AXIS = "d3ip_axis"
INTENSITY = "d3ip_intensity"
ROLE = "d3ip_role"  # "volume" | "measurement" | "pinv" | "mask" | "result" | "samples"
MEASUREMENT = "d3ip_measurement"
RUN_CARD = "d3ip_run_card"
SOURCE = "d3ip_source"

LayerData = tuple[Any, dict[str, Any], str]

def _meta(role: str, affine: Any = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {ROLE: role}
    if affine is not None:
        meta[AFFINE] = np.asarray(affine, dtype=float)
    meta.update({k: v for k, v in extra.items() if v is not None})
    return meta


def volume_layer(volume: Any, name: str) -> LayerData:
    """An io `Volume` (file intensities) as an image layer with spacing and affine."""
    data = np.asarray(volume.data, dtype=np.float32)
    lo, hi = (float(v) for v in (volume.intensity or (data.min(), data.max())))
    kwargs = {
        "name": name,
        "scale": tuple(float(s) for s in volume.spacing),
        "contrast_limits": (lo, hi if hi > lo else lo + 1.0),
        "metadata": _meta("volume", volume.affine, **{AXIS: int(volume.axis),
                                                      INTENSITY: (lo, hi),
                                                      SOURCE: str(volume.source)}),
    }
    return data, kwargs, "image"


def kind_of(measurement: Any) -> str:
    return str(getattr(measurement.operator, "kind", "measurement"))


def describe(measurement: Any) -> str:
    """A short human description, e.g. 'ct, 15 views' or 'mri, R=8'."""
    kind = kind_of(measurement)
    try:
        p = measurement.operator.params()
    except Exception:  # an operator without params() still gets a name
        p = {}
    bits = [kind]
    for key, fmt in (("n_views", "{:g} views"), ("acceleration", "R={:.3g}"),
                     ("n_coils", "{:g} coils")):
        if isinstance(p.get(key), int | float) and not isinstance(p.get(key), bool):
            bits.append(fmt.format(p[key]))
    return ", ".join(bits)


def _log_magnitude(y: np.ndarray) -> np.ndarray:
    mag = np.abs(y).astype(np.float32)
    if mag.ndim == 4:  # (N, coils, H, W): root sum of squares over coils
        mag = np.sqrt((mag**2).sum(axis=1))
    return np.log1p(mag / (float(mag.max()) + 1e-12) * 1e3).astype(np.float32)


def _centre_kspace(arr: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """fftshift k-space for display when its DC sits in the corner (an unshifted FFT)."""
    h, w = energy.shape[-2:]
    e = energy.reshape(-1, h, w).sum(axis=0)
    corner = e[0, 0] + e[0, -1] + e[-1, 0] + e[-1, -1]
    centre = e[h // 2 - 1: h // 2 + 1, w // 2 - 1: w // 2 + 1].sum()
    return np.fft.fftshift(arr, axes=(-2, -1)) if corner > centre else arr


def on_volume_grid(disp: np.ndarray, spacing: tuple[float, float, float],
                   image_shape: tuple[int, int]) -> tuple[np.ndarray, tuple, tuple]:
    """(data, scale, translate) that put an (N, rows, cols) display over the volume's extent
    with steps no finer than its voxels (see the module docstring)."""
    scale, translate = [float(spacing[0])], [0.0]
    for axis, (n_vox, step) in enumerate(zip(image_shape, spacing[1:]), start=1):
        n = disp.shape[axis]
        if n > n_vox:  # more samples than voxels: resample to the voxel count
            idx = np.round(np.linspace(0, n - 1, n_vox)).astype(int)
            disp = np.take(disp, idx, axis=axis)
            n = n_vox
        c = float(step) * n_vox / n
        scale.append(c)
        translate.append((c - float(step)) / 2.0)  # edges on the volume's edges
    return np.ascontiguousarray(disp), tuple(scale), tuple(translate)


def _kind_attr(kind: str | None, attr: str, default: str) -> str:
    """What kind `kind` declares as `attr` (operators/kinds.py), `default` if no kind."""
    from .operators.kinds import kind_attr

    return kind_attr(kind, attr, default)


def _data_label(kind: str | None) -> str:
    """The measurement layer's name for real-valued data of `kind` ('sinogram')."""
    return _kind_attr(kind, "data_label", "measurement")


def measurement_layers(measurement: Any, name: str, pinv: np.ndarray | None = None,
                       show_measurement: bool = False) -> list[LayerData]:
    """The measurement (sinogram or k-space log-magnitude), its mask, and A†y."""
    m = measurement
    kind = kind_of(m)
    spacing = tuple(float(s) for s in m.spacing)
    desc = describe(m)
    y = m.y.detach().cpu().numpy() if hasattr(m.y, "detach") else np.asarray(m.y)
    layers: list[LayerData] = []
    common = {AXIS: None, SOURCE: m.source or name, "d3ip_description": desc}
    if np.iscomplexobj(y):
        disp = _log_magnitude(y)
        disp = _centre_kspace(disp, disp)
        label = "k-space"
    else:
        disp = np.asarray(y, dtype=np.float32)
        if disp.ndim == 4:
            disp = np.sqrt((disp**2).sum(axis=1))
        label = _data_label(kind)
    meas_meta = _meta("measurement", m.affine, **{MEASUREMENT: m, INTENSITY: tuple(m.intensity)},
                      **common)
    disp, disp_scale, disp_translate = on_volume_grid(disp, spacing, tuple(m.image_shape))
    layers.append((disp, {"name": f"{name} {label} ({desc})", "metadata": meas_meta,
                          "scale": disp_scale, "translate": disp_translate,
                          "colormap": "magma", "visible": show_measurement}, "image"))
    mask = None
    try:
        mask = m.operator.arrays().get("mask")
    except Exception:  # operators without arrays() have no mask to show
        mask = None
    if mask is not None and np.iscomplexobj(y):
        mask = np.asarray(mask, dtype=np.float32)
        if hasattr(mask, "ndim") and mask.ndim == 2:
            mask = np.broadcast_to(mask, (disp.shape[0], *mask.shape[-2:]))
        if mask.shape[-2:] == disp.shape[-2:]:
            mask = _centre_kspace(np.ascontiguousarray(mask), np.abs(y).reshape(
                y.shape[0], -1, *y.shape[-2:]).sum(axis=1) if y.ndim == 4 else np.abs(y))
            mask, mask_scale, mask_translate = on_volume_grid(
                np.ascontiguousarray(mask), spacing, tuple(m.image_shape))
            layers.append((mask, {
                "name": f"{name} mask ({desc})", "scale": mask_scale,
                "translate": mask_translate,
                "colormap": "green", "blending": "additive", "opacity": 0.6,
                "contrast_limits": (0.0, 1.0), "visible": False,
                "metadata": _meta("mask", m.affine, **common)}, "image"))
    if pinv is None:
        pinv = m.pinv()
    layers.append((np.asarray(pinv, dtype=np.float32), {
        "name": f"{name} {_kind_attr(kind, 'pinv_name', 'A†y')} ({desc})", "scale": spacing,
        "contrast_limits": (0.0, 1.0),
        "metadata": _meta("pinv", m.affine, **{INTENSITY: tuple(m.intensity)}, **common)},
        "image"))
    return layers


_ADAPTER_LABEL = {"none": "", "scd": "SCD", "ddip": "DDIP", "d3ip-base": "D3IP-base",
                  "d3ip-mbir": "D3IP-MBIR", "d3ip-meta": "D3IP-meta"}
def method_label(config: Any) -> str:
    """The method of a run as papers name it, e.g. 'D3IP-base+DDS' or 'ADMM-TV'."""
    from .methods import get_method

    try:
        solver = get_method(config.solver).label
    except KeyError:
        solver = config.solver
    adapter = _ADAPTER_LABEL.get(config.adapter, config.adapter)
    return f"{adapter}+{solver}" if adapter else solver


def result_name(config: Any, source: str, settings: str = "", number: int = 0,
                status: str = "") -> str:
    """A result layer name that tells runs apart at a glance, e.g. '#2 D3IP-base+DDS cpu-preview
    NFE12 K4 [brain]', or '#2 cancelled · D3IP-base+DDS …' once cancelled: napari's layer list
    elides long names in the middle, so what tells two runs apart comes first (the run's number,
    the same as in the runs table, and its status) and the source last."""
    from .methods import get_method

    preset = getattr(config, "preset", None) or ("custom" if get_method(config.solver).uses_prior
                                                 else "")
    head = " ".join(b for b in (f"#{number}" if number else "", status) if b)
    body = " ".join(b for b in (method_label(config), preset, settings) if b) + f" [{source}]"
    return f"{head} · {body}" if status else " ".join(b for b in (head, body) if b)


def result_kwargs(name: str, measurement: Any, config: Any) -> dict[str, Any]:
    """Layer kwargs of a new result: spacing, affine, fixed contrast (set once: [0, 1])."""
    return {
        "name": name,
        "scale": tuple(float(s) for s in measurement.spacing),
        "contrast_limits": (0.0, 1.0),
        "colormap": "gray",
        "metadata": _meta("result", measurement.affine,
                          **{INTENSITY: tuple(measurement.intensity),
                             SOURCE: measurement.source,
                             "d3ip_config": config.to_dict()}),
    }
