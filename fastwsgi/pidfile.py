"""--pid FILE: the PID of the process an operator signals, written where init scripts look for it.

Theory of operation: `PidFile(path)` is created by the process users signal (the master under -w,
--reload, --metrics-bind or --user, else the single serving process) once its sockets listen and its
signal handlers are in place (a TERM sent the moment the file appears is a graceful stop), and removed by
that same process when it exits, whatever the way (graceful or fast stop, a normal return, an
exception), but only while the file still holds its PID: a newer instance that took the file over
keeps it.

`check()` refuses a file that names another running process (as gunicorn does: a second instance
started by mistake stops before it binds or imports anything); a file naming a dead process, or
holding no number, is stale and is overwritten. "Running" is `kill(pid, 0)` succeeding or failing
with EPERM (alive, someone else's). `create()` checks again, then writes the file atomically: a
temporary file in the same directory, mode 0644, renamed over FILE, so a reader never sees it empty
or half written. `rename()` moves it (a binary upgrade, fastwsgi.workers.upgrade: the old master's
file becomes FILE.oldbin while the new master writes FILE), and `remove()` follows it.
"""

import errno
import os
import tempfile

__all__ = ["PidFile", "PidFileError"]


class PidFileError(RuntimeError):
    """The pid file cannot be used (the message is shown to the user as one line)."""


class PidFile:
    def __init__(self, path: str):
        self.path = path
        self.pid = None  # set once we wrote the file

    def running_pid(self):
        """The PID in the file if it names a running process other than us, else None."""
        try:
            with open(self.path, encoding="ascii", errors="replace") as file:
                text = file.read(64).strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise PidFileError(f"cannot read the pid file {self.path!r}: {exc.strerror or exc}") from None
        if not text.isdigit() or int(text) <= 0 or int(text) == os.getpid():
            return None
        pid = int(text)
        try:
            os.kill(pid, 0)
        except OSError as exc:
            return pid if exc.errno == errno.EPERM else None
        return pid

    def check(self) -> None:
        """Raise PidFileError if the file names a running process or cannot be created."""
        pid = self.running_pid()
        if pid is not None:
            raise PidFileError(f"the pid file {self.path!r} names a running process ({pid}): "
                               f"already running? (remove the file if that process is not fastwsgi)")
        directory = os.path.dirname(self.path) or "."
        if not os.path.isdir(directory):
            raise PidFileError(f"cannot write the pid file {self.path!r}: no directory {directory!r}")

    def create(self) -> None:
        """Write our PID into the file (atomically); raises PidFileError."""
        self.check()
        pid = os.getpid()
        try:
            fd, temporary = tempfile.mkstemp(dir=os.path.dirname(self.path) or ".",
                                             prefix=f".{os.path.basename(self.path)}.")
            try:
                os.write(fd, f"{pid}\n".encode())
                os.fchmod(fd, 0o644)
            finally:
                os.close(fd)
            try:
                os.replace(temporary, self.path)
            except OSError:
                os.unlink(temporary)
                raise
        except OSError as exc:
            raise PidFileError(f"cannot write the pid file {self.path!r}: {exc.strerror or exc}") from None
        self.pid = pid

    def rename(self, path: str) -> bool:
        """Move our file to `path` (USR2: FILE to FILE.oldbin while a new master runs, and back);
        False, and the file stays where it is, if it cannot be moved."""
        if self.pid is None or self.pid != os.getpid():
            return False
        try:
            os.replace(self.path, path)
        except OSError:
            return False
        self.path = path
        return True

    def remove(self) -> None:
        """Delete the file if it still holds the PID we wrote (best effort: never raises)."""
        if self.pid is None or self.pid != os.getpid():  # not ours, or a forked child
            return
        try:
            with open(self.path, encoding="ascii", errors="replace") as file:
                if file.read(64).strip() != str(self.pid):
                    return
            os.unlink(self.path)
        except OSError:
            pass
