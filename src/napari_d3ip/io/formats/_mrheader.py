"""The ISMRMRD XML header (fastMRI's `ismrmrd_header`, ISMRMRD's `/dataset/xml`): the few
fields a reader needs, parsed with xml.etree (no `ismrmrd` package needed).

Fields (ISMRMRD schema, `encoding` element, first encoding only): encodedSpace / reconSpace
`matrixSize` (x, y, z) and `fieldOfView_mm` (x, y, z); `encodingLimits`
kspace_encoding_step_1 / _2 / slice (minimum, maximum, center); `trajectory`."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from ..measurements import MeasurementError


@dataclass(frozen=True)
class Limit:
    minimum: int
    maximum: int
    center: int


@dataclass(frozen=True)
class MRHeader:
    encoded_matrix: tuple[int, int, int]
    encoded_fov: tuple[float, float, float]
    recon_matrix: tuple[int, int, int]
    recon_fov: tuple[float, float, float]
    step1: Limit | None
    step2: Limit | None
    slice: Limit | None
    trajectory: str

    @property
    def readout_oversampling(self) -> float:
        """Encoded / recon field of view along the readout (x): 2 for fastMRI and most scans."""
        if self.recon_fov[0] <= 0:
            return 1.0
        return self.encoded_fov[0] / self.recon_fov[0]


def _strip(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(node: ET.Element, name: str) -> ET.Element | None:
    for c in node:
        if _strip(c.tag) == name:
            return c
    return None


def _path(node: ET.Element | None, *names: str) -> ET.Element | None:
    for n in names:
        if node is None:
            return None
        node = _child(node, n)
    return node


def _xyz(node: ET.Element | None, kind: type, where: str) -> tuple:
    if node is None:
        raise MeasurementError(f"the header has no {where}")
    try:
        return tuple(kind((_child(node, a).text or "").strip()) for a in ("x", "y", "z"))
    except (AttributeError, ValueError):
        raise MeasurementError(f"the header's {where} needs numeric x, y, z") from None


def _limit(node: ET.Element | None) -> Limit | None:
    if node is None:
        return None
    try:
        return Limit(*(int((_child(node, a).text or "").strip())
                       for a in ("minimum", "maximum", "center")))
    except (AttributeError, ValueError):
        raise MeasurementError("the header's encodingLimits need integer minimum, maximum, "
                               "center") from None


def parse_header(text: str) -> MRHeader:
    """The header's fields; a MeasurementError naming what is missing or malformed."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise MeasurementError(f"the ISMRMRD XML header is not valid XML ({e})") from None
    enc = _child(root, "encoding")
    if enc is None:
        raise MeasurementError("the ISMRMRD XML header has no <encoding> element")
    em = _xyz(_path(enc, "encodedSpace", "matrixSize"), int, "encodedSpace/matrixSize")
    ef = _xyz(_path(enc, "encodedSpace", "fieldOfView_mm"), float, "encodedSpace/fieldOfView_mm")
    rm = _xyz(_path(enc, "reconSpace", "matrixSize"), int, "reconSpace/matrixSize")
    rf = _xyz(_path(enc, "reconSpace", "fieldOfView_mm"), float, "reconSpace/fieldOfView_mm")
    if min(em) < 1 or min(rm) < 1 or min(ef) <= 0 or min(rf) <= 0:
        raise MeasurementError(f"the header's matrix sizes / fields of view must be positive "
                               f"(encoded {em} {ef}, recon {rm} {rf})")
    lim = _child(enc, "encodingLimits")
    traj = _child(enc, "trajectory")
    return MRHeader(em, ef, rm, rf, _limit(_path(lim, "kspace_encoding_step_1")),
                    _limit(_path(lim, "kspace_encoding_step_2")), _limit(_path(lim, "slice")),
                    (traj.text or "").strip() if traj is not None else "cartesian")


def header_xml(encoded_matrix, encoded_fov, recon_matrix, recon_fov, step1=None, step2=None,
               slices=None, trajectory: str = "cartesian") -> str:
    """An ISMRMRD header with these fields (for writers and tests); limits are (min, max, centre)."""
    def xyz(tag, v):
        return f"<{tag}>" + "".join(f"<{a}>{b}</{a}>" for a, b in zip("xyz", v, strict=True)) \
            + f"</{tag}>"

    def limit(tag, v):
        if v is None:
            return ""
        return (f"<{tag}><minimum>{v[0]}</minimum><maximum>{v[1]}</maximum>"
                f"<center>{v[2]}</center></{tag}>")

    return ('<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding>'
            f"<encodedSpace>{xyz('matrixSize', encoded_matrix)}{xyz('fieldOfView_mm', encoded_fov)}"
            f"</encodedSpace><reconSpace>{xyz('matrixSize', recon_matrix)}"
            f"{xyz('fieldOfView_mm', recon_fov)}</reconSpace><encodingLimits>"
            f"{limit('kspace_encoding_step_1', step1)}{limit('kspace_encoding_step_2', step2)}"
            f"{limit('slice', slices)}</encodingLimits><trajectory>{trajectory}</trajectory>"
            "</encoding></ismrmrdHeader>")
