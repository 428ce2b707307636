"""Turning the runs into results: the machine record, medians, results.json and results.md.

Theory of operation: every timed run is one record (server, scenario, round, requests, rates, CPU). For each
(server, scenario) the report takes the median of each figure over the rounds; a pair whose protocol
check failed has a status and no numbers. results.json holds the machine, the configuration, every raw
run and the medians; results.md is the same as tables a person reads: a summary of CPU per request
(the figure that still ranks servers when the client saturates), one table per scenario, and the flags.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from pathlib import Path

FIGURES = ("rps", "p50_us", "p99_us", "cpu_us_per_request", "server_cpu_share", "wrk_cpu_share")


def machine_info() -> dict:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    except OSError:
        pass
    distro = ""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                distro = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    return {
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "memory_gib": round(memory_kib / 1048576, 1),
        "kernel": platform.release(),
        "os": distro,
        "python": platform.python_version(),
        "wrk": wrk[0].strip() if wrk else "unknown",
        "load_average_at_start": os.getloadavg(),  # another user of the machine shows up here
    }


def _loads(values) -> str:
    return ", ".join(f"{x:.2f}" for x in values) if values else "not recorded"


def latency_percentiles(latency: dict) -> dict:
    """p50/p99 in µs from wrk's summary, None where wrk's histogram gave an impossible value.

    With pipelining (one latency sample per batch) wrk 4.1's percentile() sometimes returns 0 for
    p99 (and even p50); a 0 µs round trip or a p99 below the p50 is wrk's bug, not a measurement.
    """
    p50 = latency.get("p50") or latency.get("p50_us")
    p99 = latency.get("p99") or latency.get("p99_us")
    p50 = p50 if p50 else None
    p99 = p99 if p99 and (p50 is None or p99 >= p50) else None
    return {"p50_us": p50, "p99_us": p99}


def median_figures(runs: list[dict]) -> dict:
    figures = {}
    for name in FIGURES:
        values = [run[name] for run in runs if run.get(name) is not None]
        figures[name] = statistics.median(values) if values else None
    figures["rounds"] = len(runs)
    figures["client_bound_runs"] = sum(1 for run in runs if run["client_bound"])
    figures["error_runs"] = sum(1 for run in runs if run["error_count"])
    totals = {}
    for run in runs:
        for kind, count in run["errors"].items():
            if count:
                totals[kind] = totals.get(kind, 0) + count
    figures["wrk_errors"] = totals
    figures["requests_total"] = sum(run["requests"] for run in runs)
    return figures


def summarize(runs: list[dict], statuses: dict, scenarios: list, servers: list) -> dict:
    """{scenario: {server: {"status": ..., **medians}}} for every selected pair."""
    table = {}
    for scenario in scenarios:
        row = {}
        for server in servers:
            status = statuses.get((server.name, scenario.name))
            if status is None:
                continue
            entry = {"status": status}
            mine = [r for r in runs if r["server"] == server.name and r["scenario"] == scenario.name]
            if mine:
                entry.update(median_figures(mine))
            row[server.name] = entry
        table[scenario.name] = row
    return table


def _number(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _flags(entry: dict) -> str:
    flags = []
    if entry["status"] == "no-keepalive":
        flags.append("closes connections")
    if entry["status"] == "serial":
        flags.append("serves one connection at a time (others wait)")
    if entry.get("client_bound_runs"):
        flags.append(f"client-bound {entry['client_bound_runs']}/{entry['rounds']}")
    for kind, count in entry.get("wrk_errors", {}).items():
        # wrk counts a "read" error when a server closes a connection it did not announce as closing
        share = count / entry["requests_total"] if entry.get("requests_total") else 0
        flags.append(f"wrk {kind} errors: {count:,} ({share:.0%} of requests)")
    return ", ".join(flags)


def markdown(result: dict) -> str:
    machine, config, summary = result["machine"], result["config"], result["summary"]
    scenarios, servers = config["scenarios"], config["servers"]
    lines = [f"# Server comparison, {result['date']}", ""]
    lines += [f"Command: `{config['command']}`  ",
              f"Rounds: {config['rounds']} (interleaved across servers), {config['duration']} s per run after "
              f"{config['warmup']} s of warm-up; medians shown. Server pinned to CPU {config['server_cpu']}, "
              f"wrk (1 thread) to CPU {config['client_cpu']}, loopback. Total time "
              f"{result['elapsed_seconds'] / 60:.1f} min.", ""]
    lines += ["## Machine", "",
              f"{machine['cpu_model']}, {machine['cpus']} CPUs, {machine['memory_gib']} GiB, "
              f"{machine['os']}, Linux {machine['kernel']}, Python {machine['python']}, {machine['wrk']}. "
              f"Load average (1, 5, 15 min) at start: {_loads(machine.get('load_average_at_start'))}; "
              f"at the start of each round (our own server and wrk included from round 2 on): "
              f"{'; '.join(_loads(x) for x in machine.get('load_average_per_round', [])) or '-'}."
              + (f" Note: {machine['note']}." if machine.get("note") else ""),
              ""]
    lines += ["## Server CPU time per request (µs, lower is better)", "",
              "| server | " + " | ".join(scenarios) + " |",
              "|---|" + "---:|" * len(scenarios)]
    for server in servers:
        cells = []
        for scenario in scenarios:
            entry = summary[scenario].get(server)
            cells.append(_cell(entry, "cpu_us_per_request", 1))
        lines.append(f"| {server} | " + " | ".join(cells) + " |")
    lines += ["", "## Requests per second (higher is better)", "",
              "| server | " + " | ".join(scenarios) + " |",
              "|---|" + "---:|" * len(scenarios)]
    for server in servers:
        cells = [_cell(summary[scenario].get(server), "rps", 0) for scenario in scenarios]
        lines.append(f"| {server} | " + " | ".join(cells) + " |")
    lines += ["", "Cells: `n/a` not run (single-threaded server in the thread-pool scenario; nginx only serves "
              "the hello scenarios), `broken` / "
              "`unsupported` failed the protocol check (see below), `failed` did not start or run, "
              "`*` closes every connection (no keep-alive), `s` serves one keep-alive connection at a time "
              "(a second client waits while the first is idle: wrk's numbers are one client's), `c` client-bound in a majority of rounds "
              "(wrk used >= 90 % of its core: the server may be faster than shown, CPU/request still "
              "ranks it). A latency of `-`: wrk 4.1 returned an impossible percentile (0, or p99 < p50), "
              "which its histogram does with pipelined requests.", ""]
    for note in result.get("notes", []):
        lines += [f"Note: {note}", ""]
    for subject, ratios in result.get("ratios", {}).items():
        if not ratios:
            continue
        lines += [f"## {subject}: CPU per request relative to each peer (ours / theirs, < 1 is better)", "",
                  "| peer | " + " | ".join(scenarios) + " |", "|---|" + "---:|" * len(scenarios)]
        for peer, row in ratios.items():
            cells = [f"{row[scenario]:.2f}x" if scenario in row else "-" for scenario in scenarios]
            lines.append(f"| {peer} | " + " | ".join(cells) + " |")
        lines.append("")
    for scenario in scenarios:
        title = config["scenario_titles"][scenario]
        lines += [f"## {scenario}: {title}", "",
                  "| server | status | req/s | p50 ms | p99 ms | CPU µs/req | server CPU | wrk CPU | flags |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for server in servers:
            entry = summary[scenario].get(server)
            if entry is None:
                continue
            status = entry["status"]
            if "rps" not in entry:
                lines.append(f"| {server} | {status} | | | | | | | |")
                continue
            lines.append(
                f"| {server} | {status} | {_number(entry['rps'])} | {_number(_ms(entry['p50_us']), 2)} | "
                f"{_number(_ms(entry['p99_us']), 2)} | {_number(entry['cpu_us_per_request'], 1)} | "
                f"{_percent(entry['server_cpu_share'])} | {_percent(entry['wrk_cpu_share'])} | {_flags(entry)} |")
        lines.append("")
    if result.get("failures"):
        lines += ["## Runs that failed", ""] + [f"- {failure}" for failure in result["failures"]] + [""]
    lines += ["## Servers", "", "| server | versions | configuration |", "|---|---|---|"]
    for server in servers:
        versions = result["versions"].get(server, {})
        text = ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))
        lines.append(f"| {server} | {text} | {config['notes'][server]} |")
    lines.append("")
    return "\n".join(lines)


def _cell(entry: dict | None, figure: str, digits: int) -> str:
    if entry is None:
        return "n/a"
    status = entry["status"]
    if status.startswith(("broken", "unsupported", "failed")):
        return status.split(":", 1)[0]
    value = entry.get(figure)
    if value is None:
        return "-"
    marks = {"no-keepalive": "*", "serial": "s"}.get(status, "")
    if entry.get("client_bound_runs", 0) * 2 > entry.get("rounds", 0):
        marks += "c"
    return _number(value, digits) + marks


def _ms(microseconds):
    return None if microseconds is None else microseconds / 1000


def _percent(share):
    return "-" if share is None else f"{share * 100:.0f} %"


def ratios_to_peers(summary: dict, subject: str) -> dict:
    """{peer: {scenario: our CPU per request / the peer's}}, each ratio from the same run."""
    ratios: dict[str, dict[str, float]] = {}
    for scenario, row in summary.items():
        ours = row.get(subject, {}).get("cpu_us_per_request")
        if not ours:
            continue
        for peer, entry in row.items():
            theirs = entry.get("cpu_us_per_request")
            if peer != subject and theirs:
                ratios.setdefault(peer, {})[scenario] = ours / theirs
    return ratios
