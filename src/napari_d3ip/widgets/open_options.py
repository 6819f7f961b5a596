"""The Data dock's reader options for 'Open measurement': the undersampling of a fully
sampled MRI file (fastMRI training files, fully sampled ISMRMRD) and a range of slices.

The choices and their help are `io.formats.MASKS` / `OPTION_HELP` (one source of truth with
the CLI's --mask/--accel/--center-fraction/--slices); this box only collects them into an
`OpenOptions`. The reader validates them (an undersampled file with a mask chosen here is
refused by name, as on the command line)."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLineEdit

#: the first mask entry: take the file's own sampling (undersampled files)
FROM_FILE = "from the file"


class OpenOptionsBox(QGroupBox):
    """Mask / R / centre fraction for fully sampled MRI files, and slices a:b."""

    def __init__(self, parent: Any = None) -> None:
        from ..io.formats import MASKS, OPTION_HELP

        super().__init__("Opening a file", parent)
        form = QFormLayout(self)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.mask = QComboBox()
        self.mask.addItems([FROM_FILE, *MASKS])
        self.mask.setToolTip(OPTION_HELP["mask"] + f"; '{FROM_FILE}': the file is undersampled "
                             "already (fastMRI test files, ISMRMRD: the lines present)")
        form.addRow("MRI mask", self.mask)
        self.accel = QDoubleSpinBox()
        self.accel.setRange(1.01, 64.0)
        self.accel.setValue(4.0)
        self.accel.setToolTip(OPTION_HELP["accel"])
        form.addRow("R", self.accel)
        self.center_fraction = QDoubleSpinBox()
        self.center_fraction.setRange(0.0, 0.99)
        self.center_fraction.setDecimals(3)
        self.center_fraction.setSingleStep(0.01)
        self.center_fraction.setSpecialValueText("fastMRI's 0.32/R")  # shown at 0
        self.center_fraction.setToolTip(OPTION_HELP["center_fraction"] + "; 0: fastMRI's 0.32/R")
        form.addRow("centre fraction", self.center_fraction)
        self.slices = QLineEdit()
        self.slices.setPlaceholderText("all")
        self.slices.setToolTip(OPTION_HELP["slices"])
        form.addRow("slices a:b", self.slices)
        self.mask.currentTextChanged.connect(self._enable)
        self._enable()

    def _enable(self, *_: Any) -> None:
        chosen = self.mask.currentText() != FROM_FILE
        self.accel.setEnabled(chosen)
        self.center_fraction.setEnabled(chosen)

    def options(self, seed: int = 0) -> Any:
        """The `io.formats.OpenOptions` of the form (`seed` seeds a random mask)."""
        from ..io.formats import OpenOptions

        chosen = self.mask.currentText() != FROM_FILE
        cf = self.center_fraction.value()
        return OpenOptions(slices=self.slices.text().strip() or None,
                           mask=self.mask.currentText() if chosen else None,
                           accel=self.accel.value() if chosen else None,
                           center_fraction=cf if chosen and cf > 0 else None, seed=int(seed))
