"""Prior adaptation (LoRA via peft): SCD, DDIP and D3IP base / mbir / meta."""

from .d3ip import ADAPTERS, Adapter, AdapterError, adapted_slices, build_adapter

__all__ = ["ADAPTERS", "Adapter", "AdapterError", "build_adapter", "adapted_slices"]
