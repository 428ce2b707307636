#!/usr/bin/env bash
# Proves the benchmark harness still works: runs `benchmarks/run.py --quick` (one short round of two
# scenarios on wsgiref and both fastwsgi parser backends) into a temporary directory, then checks that
# it produced results: the files exist, results.json parses, every selected pair has a status, and every
# timed pair has positive numbers. It never compares a number with a threshold (the CI machine is
# shared and noisy; ranking is the full run's job).
set -euo pipefail
cd "$(dirname "$0")/.."

out="$(mktemp -d -t fastwsgi-bench-quick.XXXXXX)"
trap 'rm -rf "$out"' EXIT

timeout 1200 python3 benchmarks/run.py --quick --out "$out"

python3 - "$out" <<'EOF'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


for name in ("results.json", "results.md", "throughput.png", "cpu_per_request.png"):
    path = out / name
    check(path.is_file() and path.stat().st_size > 0, f"{name} missing or empty")
result = json.loads((out / "results.json").read_text())
config, summary = result["config"], result["summary"]
check(set(config["scenarios"]) == {"hello", "pipeline16"}, f"unexpected scenarios {config['scenarios']}")
timed = 0
for scenario in config["scenarios"]:
    for server in config["servers"]:
        entry = summary[scenario].get(server)
        check(entry is not None and entry.get("status"), f"{scenario}/{server}: no status")
        if entry and entry["status"] in ("ok", "no-keepalive", "serial"):
            for figure in ("rps", "cpu_us_per_request", "p50_us", "p99_us"):
                value = entry.get(figure)
                if value is None and figure == "p99_us" and scenario == "pipeline16":
                    continue  # wrk 4.1's histogram can give no valid p99 with pipelining (see report.py)
                check(isinstance(value, (int, float)) and value > 0,
                      f"{scenario}/{server}: {figure} = {value!r}, expected a positive number")
            timed += 1
# wsgiref is the stdlib reference: it always installs, so its hello numbers must be there
check(summary["hello"]["wsgiref"]["status"] in ("ok", "no-keepalive", "serial"), "wsgiref/hello was not timed")
check(result["machine"]["cpu_model"] and result["machine"]["cpus"], "machine not recorded")
check(all(result["versions"].get(server, {}).get("python") for server in config["servers"]
          if summary["hello"][server]["status"] in ("ok", "no-keepalive", "serial")), "versions not recorded")
for line in (out / "results.md").read_text().splitlines()[:3]:
    print(line)
print(f"timed pairs: {timed}")
for server in config["servers"]:
    print(f"  {server}: hello {summary['hello'][server]['status']}, "
          f"pipeline16 {summary['pipeline16'][server]['status']}")
if failures:
    print("bench_quick: FAILED\n  " + "\n  ".join(failures))
    sys.exit(1)
print("bench_quick: results produced")
EOF
