"""Which method to try first, in one plain sentence per measurement kind, with its figures.

The one place the GUI reads its advice from (the lead updates the numbers here when the
results table changes). Figures: per-slice mean PSNR on the shipped 64³ brain (real anatomy),
time on our 2-core CPU; see the README's results table for how they were measured.
"""

from __future__ import annotations

#: kind -> (setting, {method: (PSNR dB, seconds or None)})
FIGURES: dict[str, tuple[str, dict[str, tuple[float, float | None]]]] = {
    "ct": ("brain-64, 15-view CT", {"ADMM-TV": (28.34, 4.0), "D3IP-base": (24.87, 400.0)}),
    "mri": ("brain-64, R=8 MRI", {"ADMM-TV": (30.87, None), "D3IP-base": (21.75, None)}),
}
#: the method the advice recommends, by the figures above
RECOMMENDED = "ADMM-TV"
#: the preset of the recommended method per measurement kind (presets/presets.json)
RECOMMENDED_PRESET = {"ct": "sv-ct-admm-tv", "mri": "mri3d-admm-tv", "mri-multicoil": "mri-mc-admm-tv"}


def no_method_note(kind: str) -> str:
    """What `d3ip reconstruct` says when no --preset/--solver/--config chose the method."""
    preset = RECOMMENDED_PRESET.get(kind)
    hint = f" Recommended for {kind}: --preset {preset}." if preset else ""
    return ("no --preset, --config or --solver given: running the library's defaults (DDS, no "
            f"adaptation). {advice(kind)}{hint}")


def _time(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 90:
        return f" in {seconds:.0f} s"
    return f" in ~{seconds / 60:.0f} min"


def advice(kind: str) -> str:
    """One line for a user choosing a method for a measurement of this operator kind."""
    entry = FIGURES.get(kind)
    if entry is None:
        return (f"No measured comparison for {kind or 'this'} measurements yet: ADMM-TV "
                "(seconds, no prior) is the quick first try; compare in the runs table.")
    setting, figures = entry
    best = figures[RECOMMENDED]
    others = ", ".join(f"{m} {p:.2f} dB{_time(s)}" for m, (p, s) in figures.items()
                       if m != RECOMMENDED)
    return (f"Best on real anatomy today: {RECOMMENDED} ({best[0]:.2f} dB{_time(best[1])}; "
            f"{others}; {setting}). The diffusion methods are for research on adaptation.")
