"""One virtual environment per server (and one for the harness's charts), created on demand.

Theory of operation: each server lives in its own venv under benchmarks/.venvs/<name> so the peers can
never clash with each other or with fastwsgi (gunicorn's sync and gthread workers share one, as do the
two fastwsgi parser backends). A venv is described by install steps (pip argument lists). Each step
that succeeded is recorded in the venv's `.bench-installed.json` under a key, so a second run installs
nothing; fastwsgi's key includes a hash of the repository's sources, so it is reinstalled (from the
repository, with `pip install <repo>`) whenever the code changed. Pip output goes to `install.log`
inside the venv; a failed step makes that venv unavailable, never the whole run.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

from .scenarios import BENCH_DIR

REPO_DIR = BENCH_DIR.parent
VENVS_DIR = BENCH_DIR / ".venvs"
MARKER = ".bench-installed.json"
INSTALL_TIMEOUT = 900  # seconds for one pip step (uWSGI compiles for a minute or two)

# Packages whose versions the report lists for each venv (those present).
REPORTED_PACKAGES = ("gunicorn", "waitress", "bjoern", "uwsgi", "uWSGI", "granian", "meinheld",
                     "greenlet", "fastwsgi", "cffi", "django", "Django", "flask", "Flask", "matplotlib")


@dataclass(frozen=True)
class VenvSpec:
    name: str
    steps: tuple[tuple[str, ...], ...]  # pip install argument lists, run in order


def _repo_source_hash() -> str:
    """Hash of what `pip install <repo>` builds from, so edits trigger a reinstall."""
    digest = hashlib.sha256()
    roots = [REPO_DIR / "fastwsgi", REPO_DIR / "csrc"]
    files = [REPO_DIR / name for name in ("pyproject.toml", "setup.py", "MANIFEST.in")]
    for root in roots:
        if root.is_dir():
            files += sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                            and p.suffix not in (".so", ".o", ".pyc"))
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(REPO_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


VENVS = {
    "wsgiref": VenvSpec("wsgiref", ()),
    "gunicorn": VenvSpec("gunicorn", (("gunicorn",),)),
    "waitress": VenvSpec("waitress", (("waitress",),)),
    "bjoern": VenvSpec("bjoern", (("bjoern",),)),  # compiles against Debian's libev-dev
    "uwsgi": VenvSpec("uwsgi", (("uwsgi",),)),
    "granian": VenvSpec("granian", (("granian",),)),
    # meinheld pins greenlet<0.5, which does not build on Python 3.11: install it alone, then a
    # current greenlet (meinheld only needs its C API at run time)
    "meinheld": VenvSpec("meinheld", (("--no-deps", "meinheld"), ("greenlet",))),
    "fastwsgi": VenvSpec("fastwsgi", (("--force-reinstall", str(REPO_DIR)),)),
    "harness": VenvSpec("harness", (("matplotlib",),)),
}


class InstallError(Exception):
    pass


def venv_dir(name: str) -> Path:
    return VENVS_DIR / name


def python_of(name: str) -> Path:
    return venv_dir(name) / "bin" / "python"


def bin_of(name: str, program: str) -> Path:
    return venv_dir(name) / "bin" / program


def _step_key(name: str, args: tuple[str, ...]) -> str:
    key = " ".join(args)
    if name == "fastwsgi":
        key += f" @{_repo_source_hash()}"
    return key


def ensure(name: str, extra_packages: tuple[str, ...] = (), log=print) -> None:
    """Creates the venv if needed and runs every install step not done yet; raises InstallError."""
    spec = VENVS[name]
    directory = venv_dir(name)
    if not python_of(name).exists():
        log(f"creating venv {directory}")
        venv.EnvBuilder(with_pip=True, clear=True).create(directory)
    marker = directory / MARKER
    done = set(json.loads(marker.read_text())) if marker.exists() else set()
    steps = list(spec.steps) + [(package,) for package in extra_packages]
    for args in steps:
        key = _step_key(name, args)
        if key in done:
            continue
        log(f"[{name}] pip install {' '.join(args)}")
        _pip(name, args)
        if name == "fastwsgi":  # a new source hash replaces the old key
            done = {k for k in done if not k.startswith(" ".join(args) + " @")}
        done.add(key)
        marker.write_text(json.dumps(sorted(done)))


def _pip(name: str, args: tuple[str, ...]) -> None:
    log_path = venv_dir(name) / "install.log"
    command = [str(python_of(name)), "-m", "pip", "install", "--disable-pip-version-check", *args]
    with open(log_path, "a") as log_file:
        log_file.write(f"\n$ {' '.join(command)}\n")
        log_file.flush()
        try:
            result = subprocess.run(command, stdout=log_file, stderr=subprocess.STDOUT,
                                    timeout=INSTALL_TIMEOUT, cwd=VENVS_DIR)
        except subprocess.TimeoutExpired:
            raise InstallError(f"pip install {' '.join(args)} timed out; see {log_path}") from None
    if result.returncode != 0:
        raise InstallError(f"pip install {' '.join(args)} failed; see {log_path}")


def versions(name: str) -> dict[str, str]:
    """Versions of the interesting packages installed in a venv, plus its Python."""
    python = str(python_of(name))
    listing = subprocess.run([python, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
                             capture_output=True, text=True, timeout=120)
    found = {}
    if listing.returncode == 0:
        for item in json.loads(listing.stdout):
            if item["name"] in REPORTED_PACKAGES or item["name"].lower() in REPORTED_PACKAGES:
                found[item["name"].lower()] = item["version"]
    python_version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                                    capture_output=True, text=True, timeout=60).stdout.strip()
    found["python"] = python_version
    return found


def system_version(program: str) -> dict[str, str]:
    """Version of a system program the comparison runs as is (nginx)."""
    try:
        result = subprocess.run([program, "-v"], capture_output=True, text=True, timeout=30)
    except OSError:
        return {program: "not installed"}
    text = (result.stdout + result.stderr).strip()
    return {program: text.rsplit("/", 1)[-1] if "/" in text else text}


def harness_python() -> Path:
    return python_of("harness")


def running_python_version() -> str:
    return sys.version.split()[0]


def check_output(name: str, code: str, extra_env: dict | None = None) -> str:
    """Runs `python -c code` in a venv and returns its stdout (used to verify fastwsgi's backend)."""
    env = dict(os.environ, **(extra_env or {}))
    result = subprocess.run([str(python_of(name)), "-c", code], capture_output=True, text=True,
                            timeout=120, env=env, cwd=VENVS_DIR)
    if result.returncode != 0:
        raise InstallError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed")
    return result.stdout.strip()
