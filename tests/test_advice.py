"""advice(kind): one plain line with the figures of FIGURES, for every kind."""

from napari_d3ip.advice import FIGURES, RECOMMENDED, advice


def test_advice_quotes_the_figures():
    text = advice("ct")
    assert RECOMMENDED in text and "28.34 dB in 4 s" in text and "24.87 dB in ~7 min" in text
    assert "30.87" in advice("mri") and "21.75" in advice("mri")
    for kind in FIGURES:
        line = advice(kind)
        assert "\n" not in line and "Table" not in line and "lr" not in line


def test_unknown_kind_still_advises():
    assert "ADMM-TV" in advice("mri-multicoil") and "mri-multicoil" in advice("mri-multicoil")
    assert "ADMM-TV" in advice("")
