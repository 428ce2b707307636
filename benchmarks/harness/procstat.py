"""Per-session process facts from /proc, beyond measure.py's CPU total: pids, and user vs system time.

Theory of operation: like measure.session_cpu_ticks (whose /proc/<pid>/stat reader it reuses), every
function here looks at the live processes whose session id is the server's (the harness starts each
server in a session of its own). `session_cpu_split` returns the same ticks as measure's total, split
into user (utime + cutime) and system (stime + cstime) time: for a server behind a proxy, system time
is mostly the kernel's share of accepting, reading, writing and closing sockets. `session_context_switches`
sums the voluntary (the thread blocked: waiting in epoll, accept, read) and involuntary (preempted)
context switches of every thread (/proc/<pid>/task/<tid>/status): two processes sharing one CPU that hand
each request back and forth pay for every switch. `cpu_ticks` reads one CPU's line of /proc/stat, so the
harness can tell how much of the servers' CPU other processes (and the hypervisor: steal) took during a
run, and `kernel_thread_ticks` the time of a kernel thread such as ksoftirqd/0.
"""

from __future__ import annotations

import os

from . import measure


def _session_stats(session_id: int):
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = measure._stat_fields(entry)
            if fields is not None and int(fields[3]) == session_id:  # field 6: session
                yield int(entry), fields


def session_pids(session_id: int) -> list[int]:
    """Every live process in the session, sorted."""
    return sorted(pid for pid, _ in _session_stats(session_id))


def session_cpu_split(session_id: int) -> tuple[int, int]:
    """(user ticks, system ticks) over the session: fields 14+16 and 15+17 of /proc/<pid>/stat."""
    user = system = 0
    for _, fields in _session_stats(session_id):
        user += int(fields[11]) + int(fields[13])
        system += int(fields[12]) + int(fields[14])
    return user, system


def session_context_switches(session_id: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of every thread of every process in the session."""
    voluntary = involuntary = 0
    for pid, _ in _session_stats(session_id):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as handle:
                    for line in handle:
                        if line.startswith("voluntary_ctxt_switches:"):
                            voluntary += int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches:"):
                            involuntary += int(line.split()[1])
            except OSError:  # the thread ended meanwhile
                continue
    return voluntary, involuntary


def cpu_ticks(cpu: int) -> dict[str, int]:
    """One CPU's counters from /proc/stat: busy (all but idle, iowait and steal), steal, and total ticks."""
    with open("/proc/stat") as handle:
        for line in handle:
            if line.startswith(f"cpu{cpu} "):
                # user nice system idle iowait irq softirq steal (guest time is already inside user)
                values = [int(v) for v in line.split()[1:9]]
                idle, steal = values[3] + values[4], values[7]
                return {"busy": sum(values) - idle - steal, "steal": steal, "total": sum(values)}
    raise OSError(f"cpu{cpu} not in /proc/stat")


def kernel_thread_ticks(name: str) -> int:
    """utime + stime of the kernel thread called NAME (e.g. ksoftirqd/0, which runs network softirqs
    deferred from a busy CPU: time that no server process is charged for); 0 when there is none."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as handle:
                    if handle.read().strip() != name:
                        continue
            except OSError:
                continue
            fields = measure._stat_fields(entry)
            return int(fields[11]) + int(fields[12]) if fields else 0
    return 0
