"""`python -m napari_d3ip.slicer_cli`: the same as the `d3ip-slicer` console script (for
Slicer's Python console, where console scripts are not on the PATH)."""

import sys

from . import main

if __name__ == "__main__":  # importing the module (a test walking the package) runs nothing
    sys.exit(main())
