"""Diffusion core: VP schedule, the UNet, prior loading and sampling (training: napari_d3ip.training)."""
