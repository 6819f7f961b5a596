"""Diffusion core: VP schedule, the UNet, Ellipses phantoms, prior loading and training."""
