"""ISMRMRD HDF5 files (ismrmrd.readthedocs.io): `/dataset/xml` (the header) and
`/dataset/data`, a compound of `head` (AcquisitionHeader), `traj` and `data` (float32,
interleaved complex, coils x samples), one record per acquired line. Read with h5py and
xml.etree (no `ismrmrd` package).

Supported: Cartesian 2-D multi-slice (encoded z = 1; slices from `idx.slice`) and 3-D
(encoded z > 1; partitions from `idx.kspace_encode_step_2`, or from `idx.slice` when every
step_2 is 0 and the slice limits span the encoded z, as mridata.org's 3-D FSE knees store them:
that axis is read as k-space kz, not as already-transformed partitions). Noise-measurement
acquisitions (flag bit 19) are skipped. Lines are placed by `kspace_encode_step_1/2` with the
header's `encodingLimits` centre at index N//2. The readout oversampling is cropped via the
reconSpace field of view. The sampling mask is the set of lines present.

3-D: an inverse FFT along the (fully sampled) readout makes one 2-D (ky, kz) problem per
readout position: the volume is (x, y, z) = (slice, row, column). 2-D: (slice, x, y).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...operators.base import Measurement
from ..measurements import MeasurementError, claimed_bytes
from . import MeasurementFormat, OpenOptions, check_options, slice_range
from ._hdf5 import dataset_text, fail, open_h5, sniffer
from ._mrgeometry import UNKNOWN, affine_2d, affine_3d, diagonal_affine, directions
from ._mrheader import parse_header
from ._mri import acs_box, assemble, crop_readout, espirit_bytes

NAME = "ismrmrd"
OPTIONS = ("slices",)
NOISE_FLAG = 1 << 18  # ACQ_IS_NOISE_MEASUREMENT = 19 (1-based bit)
HEAD_FIELDS = ("flags", "number_of_samples", "active_channels", "idx")


def _looks_ismrmrd(f) -> bool:
    """/dataset with 'xml' and 'data', or a 'data' compound of acquisitions without its
    header (recognised so that the refusal names the missing header)."""
    g = f.get("dataset")
    if g is None or "data" not in g:
        return False
    return "xml" in g or "head" in (getattr(g["data"], "dtype", None) and g["data"].dtype.names or ())


def _heads(f, path: Path):
    d = f["dataset/data"]
    names = d.dtype.names or ()
    if "head" not in names or "data" not in names:
        fail(path, NAME, [f"'/dataset/data' has fields {names}; the ISMRMRD layout needs "
                          "'head' and 'data'"])
    head = d.fields("head")[()]
    missing = [n for n in HEAD_FIELDS if n not in (head.dtype.names or ())]
    if missing:
        fail(path, NAME, [f"the acquisition header lacks {', '.join(missing)}"])
    return head


class _Plan:
    def __init__(self, f, path: Path, options: OpenOptions):
        check_options(options, OPTIONS, NAME)
        problems: list[str] = []
        if "xml" not in f["dataset"]:
            fail(path, NAME, ["no '/dataset/xml' (the ISMRMRD header: encoded/recon matrix and "
                              "field of view, encoding limits); the file is incomplete: "
                              "re-export it with its header"])
        self.hdr = parse_header(dataset_text(f["dataset/xml"]))
        if self.hdr.trajectory.lower() != "cartesian":
            fail(path, NAME, [f"trajectory {self.hdr.trajectory!r}: only Cartesian data are read"])
        head = _heads(f, path)
        keep = (head["flags"].astype(np.uint64) & np.uint64(NOISE_FLAG)) == 0
        self.records = np.flatnonzero(keep)
        self.n_noise = int((~keep).sum())
        h = head[keep]
        if h.size == 0:
            fail(path, NAME, ["no imaging acquisitions (only noise scans, or none)"])
        ns, nc = np.unique(h["number_of_samples"]), np.unique(h["active_channels"])
        if ns.size != 1 or nc.size != 1:
            problems.append(f"acquisitions differ in samples {ns.tolist()} / coils {nc.tolist()}")
        self.readout, self.coils = int(ns[0]), int(nc[0])
        ex, ey, ez = self.hdr.encoded_matrix
        if self.readout != ex:
            problems.append(f"the header's encoded matrix x = {ex} disagrees with the "
                            f"{self.readout} samples per acquisition")
        self.is3d = ez > 1
        idx = h["idx"]
        s1 = idx["kspace_encode_step_1"].astype(int)
        s2 = idx["kspace_encode_step_2"].astype(int)
        sl = idx["slice"].astype(int)
        self.partitions_from = "kspace_encode_step_2"
        if self.is3d and not s2.any() and sl.max() + 1 == ez:
            s2, sl, self.partitions_from = sl, np.zeros_like(sl), "slice (mridata.org convention)"
        self.ny, self.nz = ey, (ez if self.is3d else 1)
        c1 = self.hdr.step1.center if self.hdr.step1 else ey // 2
        c2 = self.hdr.step2.center if (self.hdr.step2 and self.is3d) else self.nz // 2
        self.iy = s1 - c1 + ey // 2
        self.iz = s2 - c2 + self.nz // 2 if self.is3d else np.zeros_like(s2)
        self.isl = sl
        if (self.iy.min() < 0 or self.iy.max() >= ey or self.iz.min() < 0 or self.iz.max() >= self.nz):
            problems.append(f"encode steps fall outside the encoded matrix {ey} x {ez}")
        fail(path, NAME, problems)
        self.n_slices_file = int(sl.max()) + 1
        self.dirs = directions(h, str(path))
        self.centres = self._centres(h, path) if self.dirs is not None else None
        self.rows = max(1, int(round(self.readout / self.hdr.readout_oversampling)))
        self.mask = self._mask()
        n_total = self.rows if self.is3d else self.n_slices_file
        self.picked = slice_range(options.slices, n_total, "readout positions" if self.is3d else "slices")
        img = (self.ny, self.nz) if self.is3d else (self.rows, self.ny)
        self.image_shape = img
        self.memory = claimed_bytes("mri-multicoil", len(self.picked), img, (self.coils, *img),
                                    maps_shape=(len(self.picked), self.coils, *img)) \
            + 16.0 * self.coils * self.readout * self.ny * self.nz * self.n_slices_file \
            + espirit_bytes(*img, self.coils)
        box = acs_box(self.mask if self.is3d else np.broadcast_to(self.mask, img))
        if min(box) < 2:
            fail(path, NAME, [f"the acquired lines have no fully sampled centre (ACS block {box}); "
                              "coil maps and the image phase are estimated from it"])
        self.acs = box

    def _centres(self, h: np.ndarray, path: Path) -> np.ndarray:
        """LPS centre of each slice (2-D; slices renumbered in order along slice_dir, so the
        volume is a spatially ordered stack) or of the slab (3-D, one row)."""
        pos = np.asarray(h["position"], float).reshape(-1, 3)
        if self.is3d:
            return pos[:1]
        missing = sorted(set(range(self.n_slices_file)) - set(self.isl.tolist()))
        if missing:
            fail(path, NAME, [f"slice(s) {missing[:8]} of 0..{self.n_slices_file - 1} have no "
                              "acquisitions; the stack has holes"])
        centres = np.stack([pos[self.isl == s][0] for s in range(self.n_slices_file)])
        order = np.argsort(centres @ self.dirs[2], kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        self.isl = rank[self.isl]
        return centres[order]

    def affine(self) -> tuple[np.ndarray, str]:
        """voxel (slice, row, col) -> RAS of the picked volume, and the orientation note."""
        p = self.picked
        if self.dirs is None:
            return diagonal_affine(self.spacing(), p.start, p.step), UNKNOWN
        if self.is3d:
            a = affine_3d(self.dirs, self.centres[0], (self.rows, self.ny, self.nz), self.spacing(),
                          p.start, p.step)
            return a, "from the acquisition headers (position, read/phase/slice_dir, LPS -> RAS)"
        a, note = affine_2d(self.dirs, self.centres[list(p)], self.rows, self.ny, self.spacing(),
                            self.hdr.encoded_fov[2])
        return a, note or "from the acquisition headers (position, read/phase/slice_dir, LPS -> RAS)"

    def _mask(self) -> np.ndarray:
        m = np.zeros((self.ny, self.nz), bool)
        first = self.isl == self.isl.min()
        m[self.iy[first], self.iz[first]] = True
        return m if self.is3d else m[:, 0]

    def spacing(self) -> tuple[float, float, float]:
        ef, em = self.hdr.encoded_fov, self.hdr.encoded_matrix
        dx = self.hdr.recon_fov[0] / self.rows
        dy, dz = ef[1] / em[1], ef[2] / em[2]
        return (dx, dy, dz) if self.is3d else (dz, dx, dy)

    def describe(self) -> dict[str, Any]:
        sampled = int(self.mask.sum())
        return {"kind": "mri-multicoil", "acquisition": "3-D Cartesian" if self.is3d else
                "2-D multi-slice Cartesian", "partitions_from": self.partitions_from
                if self.is3d else None, "acquisitions": int(self.records.size),
                "noise_scans_skipped": self.n_noise, "coils": self.coils,
                "slices": len(self.picked), "image_shape": list(self.image_shape),
                "readout_oversampling": self.readout / self.rows,
                "acceleration": self.mask.size / sampled, "acs_block": list(self.acs),
                "reference": False, "spacing_mm": list(self.spacing()),
                "orientation": self.axes(), "memory_bytes": self.memory}

    def axes(self) -> str:
        """'unknown', or where the array axes point ('S, P, L' = slice, row, col towards ...)."""
        from ._mrgeometry import describe

        return "unknown" if self.dirs is None else "slice, row, col towards " + describe(self.affine()[0])


def _read(f, plan: _Plan, path: Path) -> np.ndarray:
    """k-space (N, C, H, W) of the picked slices / readout positions."""
    from ..files import check_memory

    check_memory(plan.memory, f"{path}: {plan.records.size} acquisitions of {plan.coils} coils")
    data = f["dataset/data"].fields("data")[()]
    grid = np.zeros((plan.n_slices_file, plan.coils, plan.readout, plan.ny, plan.nz), np.complex64)
    for j, rec in enumerate(plan.records):
        v = np.asarray(data[rec], np.float32)
        if v.size != 2 * plan.coils * plan.readout or not np.all(np.isfinite(v)):
            raise MeasurementError(f"{path}: acquisition {rec} holds {v.size} floats (expected "
                                   f"{2 * plan.coils * plan.readout}) or NaN/inf values")
        line = (v[0::2] + 1j * v[1::2]).reshape(plan.coils, plan.readout)
        grid[plan.isl[j], :, :, plan.iy[j], plan.iz[j]] = line
    sel = list(plan.picked)
    if plan.is3d:  # readout -> x: one (ky, kz) problem per readout position
        k = crop_readout(grid[0], plan.rows, axis=1)  # (C, x, ky, kz), x still in k-space
        import torch

        t = torch.from_numpy(k)
        x = torch.fft.fftshift(torch.fft.ifft(torch.fft.ifftshift(t, dim=1), dim=1, norm="ortho"),
                               dim=1)
        return x.permute(1, 0, 2, 3)[sel].numpy().astype(np.complex64)
    k = crop_readout(grid[..., 0], plan.rows, axis=2)  # (S, C, x, ky)
    return k[sel]


def _open(path: Path, options: OpenOptions) -> Measurement:
    with open_h5(path, NAME) as f:
        plan = _Plan(f, path, options)
        k = _read(f, plan, path)
    mask = plan.mask if plan.is3d else np.broadcast_to(plan.mask, plan.image_shape).copy()
    affine, orientation = plan.affine()
    info = {"format": NAME, "acquisition": "3d" if plan.is3d else "2d",
            "partitions_from": plan.partitions_from, "noise_scans_skipped": plan.n_noise,
            "orientation": orientation}
    return assemble(k, mask, None, plan.spacing(), str(path), info, affine=affine)


def _inspect(path: Path, options: OpenOptions) -> dict[str, Any]:
    with open_h5(path, NAME) as f:
        return _Plan(f, path, options).describe()


FORMAT = MeasurementFormat(
    name=NAME,
    description="ISMRMRD .h5/.mrd, Cartesian 2-D multi-slice or 3-D (lines present = mask)",
    sniff=sniffer(_looks_ismrmrd),
    open=_open,
    inspect=_inspect,
)
