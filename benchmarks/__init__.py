"""Quality and speed benchmarks of napari-d3ip; results as markdown tables beside them.

Run each as a module from the repository root, e.g. `python -m benchmarks.quality --quick`.
One job per module:

- `tasks`: the tasks, methods, paper tables and sample volumes (what is measured);
- `measure`: one timed run (wall, memory, UNet time, metrics) and the machine it ran on;
- `store`: the JSON store of sections (results.json);
- `report`: markdown rendering (RESULTS.md);
- `projection`: the cost of a bigger run, from the library's cost model and a measured run.
"""
