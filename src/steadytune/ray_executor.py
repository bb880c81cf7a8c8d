"""Where `RayExecutor` was imported from before 0.7.0; it lives in `steadytune.study.ray_executor` now."""

from .study.ray_executor import DEFAULT_MAX_RETRIES, RayExecutor, TrialFunction

__all__ = ["DEFAULT_MAX_RETRIES", "RayExecutor", "TrialFunction"]
