"""Draws the PNG charts from results.json: `python charts.py RESULTS_DIR` (run in the harness venv).

Theory of operation: one figure per figure of merit (throughput, CPU per request), each a grid with one
panel per scenario, since scenarios differ by orders of magnitude and share no scale. Each panel has one
horizontal bar per server that produced numbers, sorted best first, fastwsgi's bars in a distinct colour,
the value printed at the end of the bar. Pairs without numbers (broken, unsupported, n/a) are left out
and listed under the panel. Uses only matplotlib's non-interactive Agg backend.
"""

import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OURS_COLOUR = "#d62728"
PEER_COLOUR = "#1f77b4"

CHARTS = [
    ("throughput.png", "rps", "requests per second (higher is better)", True, "{:,.0f}"),
    ("cpu_per_request.png", "cpu_us_per_request", "server CPU µs per request (lower is better)", False,
     "{:,.1f}"),
]


def draw(result: dict, figure: str, title: str, higher_is_better: bool, fmt: str, path: Path) -> None:
    scenarios = result["config"]["scenarios"]
    columns = min(3, len(scenarios))
    rows = math.ceil(len(scenarios) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6.2 * columns, 3.6 * rows), squeeze=False)
    for index, scenario in enumerate(scenarios):
        axis = axes[index // columns][index % columns]
        entries = result["summary"][scenario]
        measured = [(name, entry[figure]) for name, entry in entries.items() if entry.get(figure)]
        missing = [f"{name}: {entry['status'].split(':', 1)[0]}" for name, entry in entries.items()
                   if not entry.get(figure)]
        # barh draws the first bar at the bottom: order worst to best so the best is on top
        measured.sort(key=lambda item: item[1], reverse=not higher_is_better)
        names = [name for name, _ in measured]
        values = [value for _, value in measured]
        colours = [OURS_COLOUR if name.startswith("fastwsgi") else PEER_COLOUR for name in names]
        axis.barh(names, values, color=colours)
        for position, value in enumerate(values):
            axis.text(value, position, " " + fmt.format(value), va="center", fontsize=8)
        if values:
            axis.set_xlim(0, max(values) * 1.3)
        axis.set_title(result["config"]["scenario_titles"][scenario], fontsize=10)
        axis.tick_params(axis="both", labelsize=8)
        if missing:
            axis.set_xlabel("not measured: " + ", ".join(missing), fontsize=7, wrap=True)
    for index in range(len(scenarios), rows * columns):
        axes[index // columns][index % columns].axis("off")
    machine = result["machine"]
    fig.suptitle(f"{title}\n{machine['cpu_model']}, {machine['cpus']} CPUs, Python {machine['python']}, "
                 f"{result['date']}; one server process on one CPU, wrk on the other", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: charts.py RESULTS_DIR", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    result = json.loads((directory / "results.json").read_text())
    for filename, figure, title, higher_is_better, fmt in CHARTS:
        draw(result, figure, title, higher_is_better, fmt, directory / filename)
        print(directory / filename)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
