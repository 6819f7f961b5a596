"""Training of diffusion priors, in one place: the options and named recipes (recipes.py), the
losses and schedules, the phantom families and the data stream (phantoms.py, data.py), the
validation metrics, the checks before any compute (preflight.py), checkpoints and their compact
form (checkpoints.py), the trainer, and the quality gates a prior passes before it ships
(gates.py). `d3ip train-prior` (commands/train_prior.py) and the scripts in the repository's
`training/` folder drive it.

Nothing is imported here, so `napari_d3ip.training.phantoms` (used by the sample data and the
tests) costs only itself.
"""
