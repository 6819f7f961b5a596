"""advice(kind): one plain line with the figures of FIGURES, for every kind; the recommendation
follows the figures (a method must beat ADMM-TV by RECOMMEND_MIN_GAIN dB to be recommended)."""

import pytest

from napari_d3ip import advice as A
from napari_d3ip.advice import FIGURES, advice, recommended, recommended_preset
from napari_d3ip.config import presets


def test_advice_quotes_the_figures():
    text = advice("ct")
    assert text.startswith("Best on real anatomy today: ADMM-TV (28.34 dB in 4 s")
    assert "sv-ct-best 28.77 dB in ~2 min" in text and "24.87 dB in ~7 min" in text
    assert advice("mri").startswith("Best on real anatomy today: mri3d-best (31.79 dB")
    assert "ADMM-TV 30.87 dB in 4 s" in advice("mri")
    for kind in FIGURES:
        line = advice(kind)
        assert "\n" not in line and "Table" not in line and "lr" not in line


def test_the_recommendation_follows_the_figures(monkeypatch):
    # CT: sv-ct-best is ahead by 0.43 dB, under the 0.5 dB bar: ADMM-TV, which takes seconds
    assert recommended("ct") == "ADMM-TV" and recommended_preset("ct") == "sv-ct-admm-tv"
    assert recommended("mri") == "mri3d-best" and recommended_preset("mri") == "mri3d-best"
    monkeypatch.setattr(A, "RECOMMEND_MIN_GAIN", 0.4)
    assert recommended("ct") == "sv-ct-best"
    monkeypatch.setitem(FIGURES, "mri", ("x", {"ADMM-TV": (30.0, 4.0), "mri3d-best": (29.0, 90.0)}))
    assert recommended("mri") == "ADMM-TV"


@pytest.mark.parametrize("kind", ["ct", "mri", "mri-multicoil"])
def test_every_recommended_preset_exists_and_is_of_its_kind(kind):
    preset = recommended_preset(kind)
    assert preset in presets() and presets()[preset]["task"] == kind


def test_unknown_kind_still_advises():
    assert "ADMM-TV" in advice("mri-multicoil") and "mri-multicoil" in advice("mri-multicoil")
    assert "ADMM-TV" in advice("")
    assert recommended("mri-multicoil") == "ADMM-TV"
