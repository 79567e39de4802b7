"""Compatibility: the documented path of the Ray job (it lives in ``services/distributed.py``)."""

from kronos_registry.services.distributed import run_on_ray

__all__ = ["run_on_ray"]
