"""Which method to try first, in one plain sentence per measurement kind, with its figures.

The one place the GUI and the CLI read their advice from (the lead updates the numbers here
when the results table changes). Figures: per-slice mean PSNR on the shipped 64³ brain (real
anatomy, all 64 slices), time on our 2-core CPU; `python -m benchmarks.best_presets` and the
README's results table say how they were measured.
"""

from __future__ import annotations

#: kind -> (setting, {method: (PSNR dB, seconds or None)}), the recommended method first
FIGURES: dict[str, tuple[str, dict[str, tuple[float, float | None]]]] = {
    "ct": ("brain-64, 15-view CT", {"ADMM-TV": (28.34, 4.0), "sv-ct-best": (28.77, 134.0),
                                    "D3IP-base": (24.87, 400.0)}),
    "mri": ("brain-64, R=8 MRI", {"mri3d-best": (31.79, 96.0), "ADMM-TV": (30.87, 4.0),
                                  "D3IP-base": (21.75, None)}),
}
#: the method the advice recommends per kind: the best by the figures above, unless its gain
#: over ADMM-TV is under RECOMMEND_MIN_GAIN (then ADMM-TV: as good, in seconds)
RECOMMEND_MIN_GAIN = 0.5
#: the classical answer per measurement kind (presets/presets.json): ADMM-TV, what any other
#: method is compared with (the demo runs it beside D3IP)
CLASSICAL_PRESET = {"ct": "sv-ct-admm-tv", "mri": "mri3d-admm-tv", "mri-multicoil": "mri-mc-admm-tv"}
def recommended(kind: str) -> str:
    """The method (an entry of FIGURES) to try first for this kind: 'ADMM-TV' when nothing
    beats it by RECOMMEND_MIN_GAIN dB."""
    entry = FIGURES.get(kind)
    if entry is None:
        return "ADMM-TV"
    figures = entry[1]
    best = max(figures, key=lambda m: figures[m][0])
    if best != "ADMM-TV" and figures[best][0] - figures["ADMM-TV"][0] < RECOMMEND_MIN_GAIN:
        return "ADMM-TV"
    return best


def recommended_preset(kind: str) -> str | None:
    """The preset of `recommended(kind)` (methods in FIGURES other than ADMM-TV are presets)."""
    method = recommended(kind)
    return CLASSICAL_PRESET.get(kind) if method == "ADMM-TV" else method


def no_method_note(kind: str) -> str:
    """What `d3ip reconstruct` says when no --preset/--solver/--config chose the method."""
    preset = recommended_preset(kind)
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
    rec = recommended(kind)
    best = figures[rec]
    others = ", ".join(f"{m} {p:.2f} dB{_time(s)}" for m, (p, s) in figures.items() if m != rec)
    tail = ("the other diffusion methods are for research on adaptation" if rec != "ADMM-TV"
            else "the diffusion methods add less than "
                 f"{RECOMMEND_MIN_GAIN} dB here and are for research on adaptation")
    return (f"Best on real anatomy today: {rec} ({best[0]:.2f} dB{_time(best[1])}; {others}; "
            f"{setting}); {tail}.")
