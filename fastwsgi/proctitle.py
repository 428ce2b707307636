"""-n/--name (gunicorn's proc_name): the title ps and top show for each fastwsgi process.

Theory of operation: as gunicorn, when the setproctitle package is importable (the `setproctitle`
extra: `pip install ".[setproctitle]"`) each process rewrites its command line: `fastwsgi: master
[NAME]`, `fastwsgi: worker [NAME]`, and `fastwsgi: server [NAME]` for the single process that serves
without a master. NAME is --name (config key `name`, or gunicorn's `proc_name`), else the application
spec the command was given (gunicorn's default_proc_name; `DEFAULT_NAME`, set by the command; serve()
leaves an embedding program's title alone unless given name=). Without setproctitle, on Linux, --name
(never the default) becomes the kernel's 15-byte process name through prctl(PR_SET_NAME)
(/proc/PID/comm, `ps -o comm`, `top`, `pkill NAME`), the same for the master and the workers;
elsewhere nothing changes. `set_title(role, options)` is called by each process once it knows its
role (the master or single process at start, a worker after the fork).
"""

import sys

__all__ = ["set_title", "DEFAULT_NAME"]

DEFAULT_NAME = None  # the command's application spec (fastwsgi.cli sets it)
PR_SET_NAME = 15  # <linux/prctl.h>


def set_title(role: str, options: dict) -> None:
    name = options.get("name")
    try:
        from setproctitle import setproctitle
    except ImportError:
        if name and sys.platform.startswith("linux"):
            _set_comm(name)
        return
    name = name or DEFAULT_NAME
    if name:
        setproctitle(f"fastwsgi: {role} [{name}]")


def _set_comm(name: str) -> None:
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode("utf-8", "replace")[:15]), 0, 0, 0)
    except (OSError, AttributeError):  # no libc prctl: the title is cosmetic
        pass
