"""Pre-fork processes: `arbiter.Arbiter` (the master), `worker.Worker` (one child serving requests) and
`upgrade` (USR2: a new master on the same sockets).

See docs/architecture.md, "Master and workers". `Arbiter` is imported on first use, so that the
command can read what USR2 handed it (`upgrade.claim()`) without importing fork and signal handling
(which do not exist on every platform).
"""

__all__ = ["Arbiter"]


def __getattr__(name):
    if name == "Arbiter":
        from .arbiter import Arbiter

        return Arbiter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
