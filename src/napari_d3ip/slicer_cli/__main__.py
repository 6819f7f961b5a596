"""`python -m napari_d3ip.slicer_cli`: the same as the `d3ip-slicer` console script (for
Slicer's Python console, where console scripts are not on the PATH)."""

import sys

from . import main

sys.exit(main())
