"""fastMRI HDF5 files (https://github.com/facebookresearch/fastMRI, the dataset's README).

Layout: `kspace` complex64, (slices, coils, readout, phase) multi-coil or (slices, readout,
phase) single-coil; `ismrmrd_header` (XML: encoded matrix e.g. 640 x 368, recon 320 x 320,
the readout oversampled 2x; `encodingLimits/kspace_encoding_step_1` gives the acquired
columns, the others are zero padding); test/challenge files add a 1-D `mask` (phase,) and
attributes `acceleration`, `num_low_frequency`; training files are fully sampled (the user
picks a mask: `--mask equispaced|random --accel R [--center-fraction cf]`, fastMRI's
conventions); `reconstruction_rss` (multi-coil) / `reconstruction_esc` (single-coil) is the
reference, centre-cropped to the recon size.

Read as: readout oversampling removed (image rows = readout / oversampling), columns outside
the acquired range unsampled, ESPIRiT maps from the ACS with the image phase folded in
(`_mri`), image (slice, readout row, phase column) = the array order of `kspace`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from ...operators.base import Measurement
from ..measurements import MeasurementError, claimed_bytes
from . import MeasurementFormat, OpenOptions, check_options, slice_range
from ._hdf5 import dataset_text, fail, open_h5, sniffer
from ._mrgeometry import UNKNOWN, diagonal_affine
from ._mrheader import MRHeader, parse_header
from ._mri import acs_box, assemble, crop_readout, default_center_fraction, espirit_bytes, fastmri_mask

NAME = "fastmri"
OPTIONS = ("slices", "mask", "accel", "center_fraction")
REFERENCES = ("reconstruction_rss", "reconstruction_esc")


def _looks_fastmri(f) -> bool:
    k = f.get("kspace")
    return (k is not None and hasattr(k, "dtype") and k.ndim in (3, 4)
            and ("ismrmrd_header" in f or "mask" in f or any(r in f for r in REFERENCES)))


class _Plan:
    """What the file holds and how it will be read: the validated shapes, no data."""

    def __init__(self, f, path: Path, options: OpenOptions):
        problems: list[str] = []
        k = f["kspace"]
        self.multicoil = k.ndim == 4
        if not np.issubdtype(k.dtype, np.complexfloating):
            problems.append(f"'kspace' has dtype {k.dtype}; fastMRI k-space is complex64")
        if min(k.shape) < 1:
            problems.append(f"'kspace' has an empty axis: shape {k.shape}")
        fail(path, NAME, problems)
        self.kshape = tuple(int(v) for v in k.shape)
        self.coils = self.kshape[1] if self.multicoil else 1
        self.readout, self.cols = self.kshape[-2:]
        self.header = self._header(f, problems)
        self.rows = self.readout
        if self.header is not None:
            self.rows = max(1, int(round(self.readout / self.header.readout_oversampling)))
        self.acquired = self._acquired(problems)
        self.file_mask = self._mask(f, problems)
        self.reference_name = next((r for r in REFERENCES if r in f), None)
        self._check_reference(f, problems)
        fail(path, NAME, problems)
        self.picked = slice_range(options.slices, self.kshape[0])
        self.column_mask, self.pattern = self._sampling(options, path)
        self.memory = claimed_bytes("mri-multicoil", len(self.picked), (self.rows, self.cols),
                                    (self.coils, self.rows, self.cols),
                                    maps_shape=(len(self.picked), self.coils, self.rows,
                                                self.cols)) \
            + 8.0 * len(self.picked) * self.coils * self.readout * self.cols \
            + espirit_bytes(self.rows, self.cols, self.coils)

    def _header(self, f, problems: list[str]) -> MRHeader | None:
        if "ismrmrd_header" not in f:
            return None
        try:
            h = parse_header(dataset_text(f["ismrmrd_header"]))
        except MeasurementError as e:
            problems.append(f"'ismrmrd_header': {e}")
            return None
        if (h.encoded_matrix[0], h.encoded_matrix[1]) != (self.readout, self.cols):
            problems.append(f"the header's encoded matrix {h.encoded_matrix[0]} x "
                            f"{h.encoded_matrix[1]} disagrees with 'kspace' (readout x phase "
                            f"{self.readout} x {self.cols})")
        return h

    def _acquired(self, problems: list[str]) -> slice:
        """fastMRI's padding: columns [W//2 - centre, W//2 - centre + max + 1) were acquired."""
        lim = self.header.step1 if self.header is not None else None
        if lim is None:
            return slice(0, self.cols)
        left = self.cols // 2 - lim.center
        right = left + lim.maximum + 1
        if left < 0 or right > self.cols or right - left < 2:
            problems.append(f"encodingLimits kspace_encoding_step_1 (max {lim.maximum}, centre "
                            f"{lim.center}) does not fit the {self.cols} phase columns")
            return slice(0, self.cols)
        return slice(left, right)

    def _mask(self, f, problems: list[str]) -> np.ndarray | None:
        if "mask" not in f:
            return None
        m = np.asarray(f["mask"][()])
        if m.ndim != 1 or m.size != self.cols:
            problems.append(f"'mask' has shape {m.shape}; fastMRI masks are 1-D over the "
                            f"{self.cols} phase columns")
            return None
        if not np.all(np.isfinite(m)) or not np.all((m == 0) | (m == 1)):
            problems.append("'mask' must hold 0/1 values")
            return None
        return m.astype(bool)

    def _check_reference(self, f, problems: list[str]) -> None:
        if self.reference_name is None:
            return
        r = f[self.reference_name]
        if r.ndim != 3 or r.shape[0] != self.kshape[0] or not np.issubdtype(r.dtype, np.floating):
            problems.append(f"{self.reference_name!r} has shape {r.shape} dtype {r.dtype}; "
                            f"expected float ({self.kshape[0]}, rows, cols)")
        elif r.shape[1] > self.rows or r.shape[2] > self.cols:
            problems.append(f"{self.reference_name!r} slices are {r.shape[1:]} but the image "
                            f"is {self.rows} x {self.cols}")

    def _sampling(self, o: OpenOptions, path: Path) -> tuple[np.ndarray, str]:
        if self.file_mask is not None:
            if o.mask is not None or o.accel is not None or o.center_fraction is not None:
                raise MeasurementError(f"{path}: this fastMRI file is already undersampled (it "
                                       "has a 'mask'); --mask/--accel/--center-fraction are for "
                                       "fully sampled (training) files")
            mask, pattern = self.file_mask, "file mask"
        else:
            if o.mask is None or o.accel is None:
                raise MeasurementError(f"{path}: a fully sampled fastMRI (training) file: choose "
                                       "the undersampling with --mask equispaced|random and "
                                       "--accel R (e.g. --mask random --accel 4; the centre "
                                       "fraction defaults to fastMRI's 0.32/R: 0.08 at 4x; "
                                       "in napari: the Data dock's 'MRI mask')")
            if o.mask == "poisson":
                raise MeasurementError(f"{path}: --mask poisson needs two phase-encode axes (a "
                                       "3-D acquisition); a 2-D fastMRI slice takes equispaced "
                                       "or random column masks")
            cf = o.center_fraction or default_center_fraction(o.accel)
            mask = fastmri_mask(self.cols, o.mask, float(o.accel), cf, o.seed)
            pattern = f"{o.mask} {o.accel:g}x, centre fraction {cf:g} (seed {o.seed})"
        mask = mask.copy()
        mask[: self.acquired.start] = False
        mask[self.acquired.stop:] = False
        box = acs_box(np.broadcast_to(mask, (self.rows, self.cols)))
        if box[1] < 2:
            raise MeasurementError(f"{path}: the sampling mask has no fully sampled centre "
                                   f"(ACS columns around column {self.cols // 2}); coil maps "
                                   "and the image phase are estimated from it")
        return mask, pattern

    def spacing(self) -> tuple[float, float, float]:
        h = self.header
        if h is None:
            return (1.0, 1.0, 1.0)
        return (h.recon_fov[2], h.encoded_fov[0] / h.encoded_matrix[0],
                h.encoded_fov[1] / h.encoded_matrix[1])

    def describe(self) -> dict[str, Any]:
        n_sampled = int(self.column_mask.sum())
        return {
            "kind": "mri-multicoil", "data_shape": list(self.kshape),
            "style": "test (undersampled, its own mask)" if self.file_mask is not None
            else "training (fully sampled)",
            "slices": len(self.picked), "coils": self.coils,
            "image_shape": [self.rows, self.cols],
            "readout_oversampling": self.readout / self.rows,
            "acquired_columns": f"{self.acquired.start}:{self.acquired.stop} (python slice)",
            "sampling": self.pattern,
            "acceleration": self.cols / n_sampled,
            "acceleration_in_acquired": (self.acquired.stop - self.acquired.start) / n_sampled,
            "acs_columns": acs_box(np.broadcast_to(self.column_mask, (self.rows, self.cols)))[1],
            "reference": self.reference_name or False,
            "spacing_mm": list(self.spacing()),
            "orientation": "unknown (fastMRI files carry no patient position)",
            "memory_bytes": self.memory,
        }


def _plan(f, path: Path, options: OpenOptions) -> _Plan:
    check_options(options, OPTIONS, NAME)
    return _Plan(f, path, options)


def _read_kspace(f, plan: _Plan, path: Path) -> np.ndarray:
    from ..files import check_memory

    check_memory(plan.memory, f"{path}: {len(plan.picked)} slices of {plan.coils} coils x "
                 f"{plan.readout} x {plan.cols}")
    sel = slice(plan.picked.start, plan.picked.stop, plan.picked.step)
    k = np.asarray(f["kspace"][sel])
    if not plan.multicoil:
        k = k[:, None]
    bad = int(k.size - np.count_nonzero(np.isfinite(k)))
    if bad:
        raise MeasurementError(f"{path}: 'kspace' holds {bad} NaN or infinite value(s) in the "
                               "selected slices; the data are damaged (re-export, or --slices "
                               "to leave those slices out)")
    return crop_readout(k, plan.rows)


def _reference(f, plan: _Plan) -> tuple[np.ndarray | None, list[int] | None]:
    """The reference in the image grid: centre-placed when cropped (metrics use the crop)."""
    if plan.reference_name is None:
        return None, None
    sel = slice(plan.picked.start, plan.picked.stop, plan.picked.step)
    r = np.asarray(f[plan.reference_name][sel], np.float32)
    if not np.all(np.isfinite(r)):
        raise MeasurementError(f"{plan.reference_name!r} holds NaN or infinite values")
    rh, rw = r.shape[1:]
    if (rh, rw) == (plan.rows, plan.cols):
        return r, None
    out = np.zeros((r.shape[0], plan.rows, plan.cols), np.float32)
    r0, c0 = plan.rows // 2 - rh // 2, plan.cols // 2 - rw // 2
    out[:, r0:r0 + rh, c0:c0 + rw] = r
    return out, [rh, rw]


def _open(path: Path, options: OpenOptions) -> Measurement:
    with open_h5(path, NAME) as f:
        plan = _plan(f, path, options)
        k = _read_kspace(f, plan, path)
        ref, crop = _reference(f, plan)
    mask = np.broadcast_to(plan.column_mask, (plan.rows, plan.cols)).copy()
    info = {"format": NAME, "sampling": plan.pattern, "slices": [plan.picked.start,
            plan.picked.stop, plan.picked.step], "reference_name": plan.reference_name,
            "orientation": UNKNOWN}
    if crop is not None:
        info["reference_crop"] = crop
    affine = diagonal_affine(plan.spacing(), plan.picked.start, plan.picked.step)
    return assemble(k, mask, ref, plan.spacing(), str(path), info, affine=affine)


def _inspect(path: Path, options: OpenOptions) -> dict[str, Any]:
    """What the file holds. A training file with no mask chosen yet is described as fully
    sampled (inspect shows what there is; reconstructing it needs --mask and --accel)."""
    with open_h5(path, NAME) as f:
        if "mask" in f or (options.mask is not None and options.accel is not None):
            return _plan(f, path, options).describe()
        info = _plan(f, path, dataclasses.replace(options, mask="equispaced", accel=4.0)).describe()
    info.update({"sampling": "fully sampled: reconstructing needs --mask equispaced|random --accel R",
                 "acceleration": 1.0, "acceleration_in_acquired": 1.0,
                 "acs_columns": "all (fully sampled)"})
    return info


FORMAT = MeasurementFormat(
    name=NAME,
    description="fastMRI .h5 (multi-/single-coil; test files with their mask, training "
                "files with --mask/--accel)",
    sniff=sniffer(_looks_fastmri),
    open=_open,
    inspect=_inspect,
)
