"""Pre-fork processes: `arbiter.Arbiter` (the master) and `worker.Worker` (one child serving requests).

See docs/architecture.md, "Master and workers".
"""

from .arbiter import Arbiter

__all__ = ["Arbiter"]
