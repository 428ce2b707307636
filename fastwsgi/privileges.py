"""-u/--user, -g/--group, --initgroups: the workers serve as an unprivileged user (gunicorn's settings).

Theory of operation: a server started as root (to bind :80/:443, to read a root-only TLS key) keeps
root only where root is needed, in the pre-fork master, and runs the application only as USER. So
--user implies a master (-w 1 unless set), as --reload and --metrics-bind do: the master binds the
sockets, reads the certificate and key (again on HUP), writes and removes --pid, reopens its log files
on USR1 and removes its unix socket files at exit, all as root; each worker switches to USER right
after fork, once it has its sockets (with --reuse-port it binds its own, which a port below 1024 needs
root for) and the post_fork hook has run (as root, as in gunicorn), and before it imports the
application. With --preload the application is imported by the master, as root, as in gunicorn.

The switch (`Credentials.drop`): the supplementary groups (none, or USER's from the group database with
--initgroups), then setgid(GROUP), then setuid(USER), which sets the real, effective and saved ids,
so the worker can never regain root. GROUP is --group, else USER's primary group (gunicorn keeps
the master's group instead, which leaves a worker in group root). A drop that does not happen
stops the worker with BOOT_ERROR, so the master stops with "Worker failed to boot".

Files the workers use after the switch are handed to USER:GROUP by the master (`give`): each unix:
socket it bound (its mode still comes from --umask), the heartbeat file of each worker (the worker sets
its mtime), and the log files (--access-logfile, --error-logfile/--log-file; not the files of a
--log-config, which may be shared with other programs: those are the operator's to arrange), at startup,
after a HUP and after the master reopened them on USR1, before it tells the workers to reopen theirs, so
a worker reopening a file that logrotate moved away finds it created and writable. A log file is opened
with O_NOFOLLOW and changed through its descriptor: a symbolic link planted where a log file should be
is not followed (it is reported, and left alone). The master's own opens of those files (at start, on
HUP, on USR1: `open_log`, used by fastwsgi.logs and fastwsgi.accesslog) refuse such a link too once
`guard_log_files()` ran, which the command does as soon as it knows the workers switch user: USER can
write to the log directory, logrotate moves the file away and signals USR1, and a link USER put in its
place would otherwise make root create the file it names (any path) and append the master's lines to
it. The open then fails (ELOOP): at start that is an error, on USR1 the old file is kept (reported).


`credentials(options)` checks everything before anything listens (one line, exit 1): --group without
--user, a numeric --user without a passwd entry and no --group, and a process that is not root asked
to become another user. A process already running as USER:GROUP (a service manager switched it, a
config file still says user = ...) needs no switch: the options are accepted and nothing changes.
The names themselves are checked by the option converters (`user_id`, `group_id`: exit 2).
"""

import errno
import logging
import os
from dataclasses import dataclass

__all__ = ["Credentials", "PrivilegeError", "credentials", "user_id", "group_id", "give",
           "guard_log_files", "open_log"]

log = logging.getLogger("fastwsgi")

MAX_ID = 2**32 - 1  # (uid_t)-1 means "unchanged" to the kernel: not an id


_NO_FOLLOW = 0  # os.O_NOFOLLOW once guard_log_files() ran (the workers switch user)


def guard_log_files() -> None:
    """From now on `open_log` does not follow a symbolic link in the last component of a path."""
    global _NO_FOLLOW
    _NO_FOLLOW = os.O_NOFOLLOW


def open_log(path) -> int:
    """Open the log file `path` to append (created 0644): a descriptor; raises OSError (ELOOP for a
    link once guard_log_files() ran)."""
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | _NO_FOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP and _NO_FOLLOW:  # ("Too many levels of symbolic links" misleads)
            raise OSError(exc.errno, "it is a symbolic link, which the master does not follow when the "
                                     "workers switch user (--user): name the file itself", path) from None
        raise


class PrivilegeError(RuntimeError):
    """--user/--group cannot be applied (the message is shown to the user as one line)."""


def _number(value):
    """An id given as an int or a string of digits, else None (a name)."""
    if isinstance(value, bool):
        raise ValueError("expected a name or a numeric id, not a bool")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int):
        if not 0 <= value < MAX_ID:
            raise ValueError(f"must be between 0 and {MAX_ID - 1}, got {value}")
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a name or a numeric id, got {value!r}")
    return None


def _known(value, kind: str, lookup):
    """A numeric id (an int), or a name `lookup` finds (kept as the name); else ValueError."""
    number = _number(value)
    if number is not None:
        return number
    try:
        lookup(value)
    except KeyError:
        raise ValueError(f"no such {kind} {value!r}") from None
    return value


def user_id(value):
    """--user: a user name from the passwd database or a numeric uid."""
    import pwd

    return _known(value, "user", pwd.getpwnam)


def group_id(value):
    """--group: a group name from the group database or a numeric gid."""
    import grp

    return _known(value, "group", grp.getgrnam)


@dataclass(frozen=True)
class Credentials:
    uid: int
    gid: int
    name: str  # the user name, or the uid as text when it has no passwd entry
    initgroups: bool  # the supplementary groups of `name` (True), or none

    def describe(self) -> str:
        return f"{self.name} (uid {self.uid}, gid {self.gid})"

    def drop(self) -> None:
        """Become uid:gid for good (groups, then gid, then uid); raises PrivilegeError."""
        try:
            if self.initgroups:
                os.initgroups(self.name, self.gid)
            elif os.getgroups():  # a user namespace may refuse setgroups even to root: fine if none
                os.setgroups([])
            os.setgid(self.gid)
            os.setuid(self.uid)
        except OSError as exc:
            raise PrivilegeError(f"cannot switch to user {self.describe()}: {exc.strerror or exc}") from None
        if (os.getuid(), os.geteuid(), os.getgid(), os.getegid()) != (self.uid, self.uid, self.gid, self.gid):
            raise PrivilegeError(f"switching to user {self.describe()} did not take effect")


def credentials(options: dict):
    """The Credentials the workers switch to, or None (no --user, or already that user and group).
    Raises PrivilegeError when the options cannot be applied by this process."""
    user, group = options["user"], options["group"]
    if user is None:
        if group is not None:
            raise PrivilegeError(f"--group {group} needs --user: alone it would leave the workers "
                                 f"running as the user fastwsgi was started as")
        if options["initgroups"]:
            raise PrivilegeError("--initgroups needs --user")
        return None
    import grp
    import pwd

    try:
        entry = pwd.getpwuid(user) if isinstance(user, int) else pwd.getpwnam(user)
    except KeyError:
        if not isinstance(user, int):
            raise PrivilegeError(f"no such user {user!r}") from None
        entry = None
    uid = user if isinstance(user, int) else entry.pw_uid
    name = entry.pw_name if entry is not None else str(uid)
    if group is None:
        if entry is None:
            raise PrivilegeError(f"--user {uid}: no passwd entry for this uid, so no primary group: "
                                 f"give --group too")
        gid = entry.pw_gid
    elif isinstance(group, int):
        gid = group
    else:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise PrivilegeError(f"no such group {group!r}") from None
    if options["initgroups"] and entry is None:
        raise PrivilegeError(f"--initgroups: uid {uid} has no passwd entry (no name to look its "
                             f"groups up by)")
    euid = os.geteuid()
    if euid == uid and os.getegid() == gid:
        return None  # a service manager made us USER:GROUP already
    if euid != 0:
        raise PrivilegeError(f"--user {name}: only root can switch the workers to another user; "
                             f"fastwsgi runs as uid {euid} (start it as root, or leave the user to "
                             f"the service manager and drop --user/--group)")
    return Credentials(uid, gid, name, bool(options["initgroups"]))


def give(creds: Credentials, log_files=(), unix_sockets=()) -> None:
    """Hand files the workers write or own after the switch to creds' user and group (see above).
    Failures are logged, never raised: the master keeps running."""
    for path in log_files:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            try:
                os.fchown(fd, creds.uid, creds.gid)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("Cannot give the log file %s to user %s: %s", path, creds.name, exc.strerror or exc)
    for path in unix_sockets:
        try:
            os.chown(path, creds.uid, creds.gid, follow_symlinks=False)
        except OSError as exc:
            log.warning("Cannot give the socket %s to user %s: %s", path, creds.name, exc.strerror or exc)
