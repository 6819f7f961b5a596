"""The Slicer Execution Model description of `d3ip-slicer`, generated from the library's declarations.

3D Slicer builds a CLI module's form from an XML description (title, category, groups of typed
parameters with a flag, label, description, default and constraints) and calls the executable
with one `--flag value` per parameter. Everything a parameter says here is read from where the
library declares it: the method settings from RunConfig's `Param`s (`config.specs()`: help,
range, choices, default, basic or advanced), the presets from `config.presets()` (listed
anew on every call, so a preset added to the package appears in Slicer), the operator kinds and
the simulation defaults from `operators.SIMULATION_DEFAULTS`. Only the labels, which nothing
else in the library needs, are written here.

`parameters()` is the one table; `xml_text()` renders it for Slicer, and `slicer_cli.run`
builds its argument parser from the same table, so every parameter Slicer passes is an option
the script accepts.

Conventions of the Execution Model this follows (its schema, ctkCmdLineModule.xsd, and
Slicer's command-line builder): names and long flags are identifiers ([_a-zA-Z][_a-zA-Z0-9]*,
no hyphen), so the flags are RunConfig's field names; Slicer passes every number and
enumeration on every run, a boolean only when true and a string or file only when not empty.
An optional setting (null in RunConfig) is therefore a string here: empty = null.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import numpy as np

TITLE = "D3IP Reconstruct"
CATEGORY = "Reconstruction"
MODULE_NAME = "D3IPReconstruct"
NO_PRESET = "none"
#: integer/float ranges wider than this get no slider (Slicer draws one for constrained numbers)
_MAX_SLIDER_SPAN = 1e5

#: labels a clinician reads in Slicer's form (the only fact of a field not declared elsewhere);
#: a field missing here is labelled from its name
LABELS = {
    "solver": "Data-consistency method", "adapter": "Adaptation to this volume",
    "prior": "Diffusion prior", "nfe": "Diffusion steps (NFE)", "seed": "Random seed",
    "device": "Compute device", "eta": "DDIM stochasticity (eta)", "cg_steps": "CG steps",
    "gamma": "Data weight (gamma)", "ddnm_cg_steps": "DDNM CG steps",
    "dps_zeta": "DPS step size (zeta)", "admm_rho": "ADMM penalty (rho)",
    "admm_lambda": "DiffusionMBIR weight (lambda)", "admm_iters": "DiffusionMBIR ADMM iterations",
    "tv_lambda": "ADMM-TV weight", "tv_iters": "ADMM-TV iterations", "init": "Start",
    "t_start": "Start time t*", "batch_slices": "Slices per network batch",
    "tile": "Network tile (pixels)", "bf16": "bf16 autocast",
    "k_slices": "K: slices per adaptation", "adapt_iters": "I: adaptation iterations",
    "lr": "Adaptation learning rate", "window_lo": "Adapt from time t",
    "window_hi": "Adapt up to time t", "lora_rank": "LoRA rank",
    "adapt_every": "Adapt every n-th step", "meta_finetune_iters": "D3IP-meta fine-tuning iterations",
    "adapt_params": "Adapted weights", "lora_targets": "LoRA placement",
    "keep_optimizer": "Keep the optimiser state", "mbir_axes": "DiffusionMBIR TV axes",
    "anchor": "DiffusionMBIR anchor weight",
}


@dataclass(frozen=True)
class SlicerParam:
    """One parameter of the module: its Execution Model tag and everything Slicer shows.

    tag: integer, double, boolean, string, string-enumeration, image or file; name: also the
    long flag (Slicer passes `--name value`); default: the text Slicer starts from (None: no
    default); field: the RunConfig field it sets (empty for the module's own parameters).
    """

    tag: str
    name: str
    label: str
    description: str
    default: str | None = None
    channel: str = ""
    elements: tuple[str, ...] = ()
    minimum: str | None = None
    maximum: str | None = None
    step: str | None = None
    extensions: str = ""
    image_type: str = ""
    field: str = ""

    @property
    def flag(self) -> str:
        return "--" + self.name


@dataclass(frozen=True)
class Group:
    label: str
    description: str
    params: tuple[SlicerParam, ...]
    advanced: bool = False


def number_text(v: Any) -> str:
    """A number as Slicer's form must read it: positional, shortest exact (0.001, not 1e-03:
    Slicer counts the digits after the point to choose how many decimals the box shows)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return np.format_float_positional(float(v), trim="-")


def _io_group() -> Group:
    return Group("Input and output", "The volume to reconstruct from, and where the result goes.", (
        SlicerParam("image", "input_volume", "Volume to simulate a scan from",
                    "A fully sampled volume (CT or MRI). D3IP simulates the undersampled scan chosen "
                    "under 'Simulated scan' from it and reconstructs that scan; the result can be "
                    "compared with this volume. Leave empty when you give a measurement file.",
                    channel="input", extensions=".nrrd", image_type="scalar"),
        SlicerParam("file", "measurement", "Measurement file (instead)",
                    "A measurement file written by `d3ip simulate` (.h5): the scan to reconstruct, "
                    "with its geometry. Leave empty when you give a volume.",
                    channel="input", extensions=".h5"),
        SlicerParam("image", "output_volume", "Reconstructed volume",
                    "The reconstruction, in the input's intensities and with exactly its spacing, "
                    "origin and orientation.", channel="output", extensions=".nrrd",
                    image_type="scalar"),
        SlicerParam("file", "run_card", "Run card (JSON, optional)",
                    "Where to save the run card: every setting, the prior, the package version, "
                    "timings and quality, so that the run can be repeated. Leave empty for none.",
                    channel="output", extensions=".json"),
    ))


def _simulation_group() -> Group:
    from ..operators import KINDS, MASK_PATTERNS, SIMULATION_DEFAULTS

    sim = SIMULATION_DEFAULTS
    accel = ", ".join(f"{v['accel']:g} for {k}" for k, v in sim.items() if "accel" in v)
    masks = ", ".join(f"{v['mask']} for {k}" for k, v in sim.items() if "mask" in v)
    noise = ", ".join(f"{v['noise']:g} for {k}" for k, v in sim.items())
    return Group("Simulated scan (with a volume)", "How the undersampled scan is simulated from the "
                 "input volume (the paper's tasks by default). Not used with a measurement file.", (
        SlicerParam("string-enumeration", "operator", "Scanner model",
                    "ct: parallel-beam sparse-view CT; mri: single-coil MRI with an undersampling "
                    "mask; mri-multicoil: multi-coil MRI with estimated coil sensitivities",
                    default=KINDS[0], elements=KINDS),
        SlicerParam("integer", "views", "CT: projection views",
                    "CT: number of projection angles over 180 degrees (fewer = faster scan, harder "
                    "reconstruction)", default=number_text(sim["ct"]["n_views"])),
        SlicerParam("double", "accel", "MRI: acceleration",
                    f"MRI: undersampling factor R (> 1); 0 = the task's default ({accel})",
                    default="0"),
        SlicerParam("string-enumeration", "mask", "MRI: sampling pattern",
                    f"MRI: poisson (2D variable-density Poisson disc) or uniform1d (random lines with "
                    f"a fully sampled centre); auto = the task's default ({masks})",
                    default="auto", elements=("auto", *MASK_PATTERNS)),
        SlicerParam("integer", "coils", "MRI: coils (multi-coil)", "mri-multicoil: number of receive "
                    "coils", default=number_text(sim["mri-multicoil"]["n_coils"])),
        SlicerParam("string", "noise", "Noise level",
                    f"relative Gaussian noise of the measurement (0.01 = 1%); empty = the paper's "
                    f"setting ({noise})", default=""),
    ))


def _run_param(spec) -> SlicerParam:
    """A RunConfig field as a Slicer parameter: type, default, range and help from its Param."""
    p = spec.param
    label = LABELS.get(spec.name, spec.name.replace("_", " ").capitalize())
    text = p.help
    if spec.used_with():
        text += f"; {spec.used_with()}"
    base = {"name": spec.name, "label": label, "field": spec.name}
    if spec.optional:  # null has no number box: a string, empty = null
        return SlicerParam("string", description=f"{text}; {spec.accepts()}; empty: {p.none_means}",
                           default="" if spec.default is None else number_text(spec.default), **base)
    if spec.type == "bool":
        return SlicerParam("boolean", description=text, default=number_text(spec.default), **base)
    if spec.choices:
        return SlicerParam("string-enumeration", description=text, default=str(spec.default),
                           elements=spec.choices, **base)
    if spec.type == "str":
        return SlicerParam("string", description=f"{text} ({p.accepts})" if p.accepts else text,
                           default=str(spec.default), **base)
    hi = p.hi if p.hi is not None else p.gui_hi
    bounded = p.lo is not None and hi is not None and hi - p.lo <= _MAX_SLIDER_SPAN
    step = p.step if p.step is not None else (1 if spec.type == "int" else 0.1)
    return SlicerParam("integer" if spec.type == "int" else "double",
                       description=f"{text}; {spec.accepts()}", default=number_text(spec.default),
                       minimum=number_text(p.lo) if bounded else None,
                       maximum=number_text(hi) if bounded else None,
                       step=number_text(step) if bounded else None, **base)


def _preset_param() -> SlicerParam:
    from ..config import presets

    all_ = presets()
    listing = "; ".join(f"{name} ({e.get('task', '?')}): {e.get('description', '')}"
                        for name, e in all_.items())
    return SlicerParam("string-enumeration", "preset", "Preset",
                       "A named recipe of method settings for one task (choose one made for your "
                       "scan). A setting below that you change from its shown default overrides the "
                       f"preset; the others take the preset's value. {NO_PRESET}: the settings below "
                       f"as shown. Presets: {listing}", default=NO_PRESET,
                       elements=(NO_PRESET, *all_))


def _method_groups() -> tuple[Group, Group]:
    from ..config import specs

    shown = [s for s in specs() if s.param.gui and s.flags[0]]
    basic = tuple(_run_param(s) for s in shown if s.param.gui == "basic")
    advanced = tuple(_run_param(s) for s in shown if s.param.gui != "basic")
    return (Group("Reconstruction", "The method and the run: a preset, the solver and the "
                  "adaptation, the number of diffusion steps, the seed and the device.",
                  (_preset_param(), *basic)),
            Group("Method settings (advanced)", "Every other setting of the method; each says "
                  "which solver or adapter it matters to.", advanced, advanced=True))


def parameters() -> tuple[Group, ...]:
    """The module's parameter groups, in the order Slicer shows them."""
    return (_io_group(), _simulation_group(), *_method_groups())


def all_params() -> list[SlicerParam]:
    return [p for g in parameters() for p in g.params]


def _sub(parent: ET.Element, tag: str, text: str | None) -> None:
    ET.SubElement(parent, tag).text = text


def _param_element(group: ET.Element, p: SlicerParam) -> None:
    """One parameter, its children in the schema's order (name, longflag, description, label,
    default, channel, then constraints or elements)."""
    attrs = {}
    if p.extensions:
        attrs["fileExtensions"] = p.extensions
    if p.image_type:
        attrs["type"] = p.image_type
    e = ET.SubElement(group, p.tag, attrs)
    _sub(e, "name", p.name)
    _sub(e, "longflag", p.name)
    _sub(e, "description", p.description)
    _sub(e, "label", p.label)
    if p.default is not None:
        _sub(e, "default", p.default)
    if p.channel:
        _sub(e, "channel", p.channel)
    if p.step is not None:
        c = ET.SubElement(e, "constraints")
        if p.minimum is not None:
            _sub(c, "minimum", p.minimum)
        if p.maximum is not None:
            _sub(c, "maximum", p.maximum)
        _sub(c, "step", p.step)
    for item in p.elements:
        _sub(e, "element", item)


def xml_text() -> str:
    """The module's XML description, as `d3ip-slicer --xml` prints it and the module folder
    holds it. Non-ASCII characters (γ, ρ, ...) become character references, which every XML
    reader decodes whatever its default text encoding."""
    from .. import __version__

    root = ET.Element("executable")
    for tag, text in (("category", CATEGORY), ("title", TITLE),
                      ("description", "Reconstructs a 3D CT or MRI volume from an undersampled scan "
                       "with a diffusion prior that adapts itself to the volume while it samples "
                       "(D3IP, Chung & Ye, ECCV 2024). Give a fully sampled volume to simulate the "
                       "scan from, or a measurement file. Runs napari-d3ip, the same library as the "
                       "d3ip command and the napari plugin."),
                      ("version", __version__),
                      ("license", "BSD-3-Clause"),
                      ("contributor", "napari-d3ip developers"),
                      ("acknowledgements", "D3IP: H. Chung and J. C. Ye, Deep Diffusion Image Prior "
                       "for Efficient OOD Adaptation in 3D Inverse Problems, ECCV 2024.")):
        _sub(root, tag, text)
    for g in parameters():
        ge = ET.SubElement(root, "parameters", {"advanced": "true"} if g.advanced else {})
        _sub(ge, "label", g.label)
        _sub(ge, "description", g.description)
        for p in g.params:
            _param_element(ge, p)
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="us-ascii", xml_declaration=False).decode("ascii")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + body + "\n"
