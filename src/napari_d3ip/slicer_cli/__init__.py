"""3D Slicer front end: `d3ip-slicer`, a CLI module over the same library as `d3ip` and napari.

Slicer's CLI modules are an executable plus an Execution Model XML description; Slicer builds
the form from the XML, passes volumes as NRRD files, reads `<filter-progress>` lines and loads
the outputs. `schema` builds the description from RunConfig's declarations and the presets,
`run` turns Slicer's command line into a reconstruction, `module` writes the module folder.
No science here: see docs/slicer.md.
"""

from __future__ import annotations

from .run import main

__all__ = ["main"]
