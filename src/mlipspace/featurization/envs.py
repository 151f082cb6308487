"""Per-family worker environments: build, list and check them.

Model families whose dependencies conflict (``mace-torch`` pins ``e3nn==0.4.4``,
``sevenn`` needs ``e3nn>=0.5``) each get an isolated virtual environment built from the
repository's pinned requirement file ``envs/<family>.txt``. mlipspace itself is
installed into it (editable, from this checkout), and the featurizer of that family
runs there as a worker process (:mod:`mlipspace.featurization.child`, started by
:mod:`mlipspace.featurization.parent`) writing into the shared feature store.

Environments live under ``$MLIPSPACE_ENV_DIR`` (default
``~/.cache/mlipspace/envs``), one folder per family. The ``main`` family is the calling
environment itself: its models always run in-process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..errors import EnvironmentSetupError

ENV_DIR_VARIABLE = "MLIPSPACE_ENV_DIR"
#: set in a worker process to the family whose environment it runs in
FAMILY_VARIABLE = "MLIPSPACE_ENV_FAMILY"
MAIN_FAMILY = "main"
READY_MARKER = "mlipspace-env.json"
NO_BUILD_ISOLATION = "no-build-isolation"
NO_DEPS = "no-deps"

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)\s*$")


@dataclass(frozen=True)
class Requirement:
    """One pinned line of ``envs/<family>.txt``."""

    name: str
    version: str
    no_build_isolation: bool = False
    no_deps: bool = False

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class EnvInfo:
    """State of one family's environment.

    Attributes
    ----------
    family : str
        Family name (``envs/<family>.txt``).
    path : Path
        Folder of the environment (``sys.prefix`` for the current process).
    requirements : Path
        The pinned requirement file it is built from.
    ready : bool
        Whether the environment exists and was built from the current pin file.
    detail : str
        Why it is not ready, or what it is.
    """

    family: str
    path: Path
    requirements: Path
    ready: bool
    detail: str


def repo_root() -> Path:
    """The source checkout mlipspace runs from (it holds ``envs/`` and ``pyproject.toml``)."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "envs").is_dir() or not (root / "pyproject.toml").is_file():
        raise EnvironmentSetupError(
            f"per-family environments need a source checkout of mlipspace (with envs/ and "
            f"pyproject.toml); {root} is not one"
        )
    return root


def env_root() -> Path:
    """Folder holding one environment per family (``$MLIPSPACE_ENV_DIR``)."""
    value = os.environ.get(ENV_DIR_VARIABLE)
    base = Path(value) if value else Path.home() / ".cache" / "mlipspace" / "envs"
    return base.expanduser().resolve()


def families() -> list[str]:
    """Families that have a pinned requirement file ``envs/<family>.txt``."""
    return sorted(p.stem for p in (repo_root() / "envs").glob("*.txt"))


def requirements_file(family: str) -> Path:
    """Path of ``envs/<family>.txt``; raises if the family has none."""
    path = repo_root() / "envs" / f"{family}.txt"
    if not path.is_file():
        raise EnvironmentSetupError(
            f"no environment is defined for family {family!r} (no {path}); "
            f"known families: {', '.join(families()) or '(none)'}"
        )
    return path


def parse_requirements(path: Path) -> list[Requirement]:
    """Read a pin file: one ``name==version`` per line, ``#`` comments.

    A trailing ``# no-build-isolation`` marks a source build that must compile against
    the torch already installed (``torch-scatter``); a trailing ``# no-deps`` a package
    installed without its declared dependencies (``mattersim``, whose list pulls PyPI
    torchvision), whose imports the file pins instead. Anything but exact pins is
    rejected, so an environment is reproducible.
    """
    out = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line, _, comment = raw.partition("#")
        if not line.strip():
            continue
        match = _PIN.match(line)
        if match is None:
            raise EnvironmentSetupError(
                f"{path}:{number}: {line.strip()!r} is not an exact pin 'name==version'"
            )
        out.append(
            Requirement(match[1], match[2], NO_BUILD_ISOLATION in comment, NO_DEPS in comment)
        )
    return out


def core_dependencies() -> list[str]:
    """mlipspace's own runtime dependencies, from the checkout's ``pyproject.toml``."""
    with open(repo_root() / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def environment_of(name: str) -> str:
    """The environment that ``name`` needs: ``name`` itself when ``envs/<name>.txt`` exists,
    else the environment of the model family ``name`` (``orb``, ``orb:``, ``pet``...) as
    its model card (:attr:`mlipspace.models.ModelCard.environment`) names it.

    Raises
    ------
    EnvironmentSetupError
        If ``name`` is neither an environment nor a registered model or family.
    """
    known = families()
    if name in known:
        return name
    # imported here: the worker side of this module must not load every model family
    from ..models.registry import model_specs

    specs = model_specs()
    spec = specs.get(name) or specs.get(name.rstrip(":") + ":")
    if spec is None:
        raise EnvironmentSetupError(
            f"{name!r} is neither an environment ({', '.join(known)}) nor a model family "
            f"(`mlipspace models` lists them)"
        )
    return spec.card.environment


def env_path(family: str) -> Path:
    """Folder of the environment of ``family``."""
    return env_root() / family


def env_python(family: str) -> Path:
    """The Python interpreter of the environment of ``family``."""
    return env_path(family) / "bin" / "python"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pin_mismatches(family: str) -> list[str]:
    """Pins of ``family`` that the *current* interpreter does not satisfy.

    A local version label is ignored (``2.13.0+cpu`` satisfies ``torch==2.13.0``).
    """
    problems = []
    for req in parse_requirements(requirements_file(family)):
        try:
            installed = metadata.version(_normalise(req.name))
        except metadata.PackageNotFoundError:
            problems.append(f"{req.name} is not installed (needs {req.version})")
            continue
        if installed.split("+", 1)[0] != req.version:
            problems.append(f"{req.name} {installed} installed, {req.version} pinned")
    return problems


def runs_here(family: str) -> bool:
    """Whether models of ``family`` run in the current process (no worker needed).

    True for the ``main`` family, inside a worker of ``family``, and in any interpreter
    that has every pin of ``envs/<family>.txt`` installed.
    """
    if family == MAIN_FAMILY or os.environ.get(FAMILY_VARIABLE) == family:
        return True
    try:
        return not pin_mismatches(family)
    except EnvironmentSetupError:
        return False


def env_status(family: str) -> EnvInfo:
    """Whether the environment of ``family`` exists and matches its pin file."""
    requirements = requirements_file(family)
    path = env_path(family)
    marker = path / READY_MARKER
    if not env_python(family).exists():
        return EnvInfo(family, path, requirements, False, "not created")
    if not marker.is_file():
        return EnvInfo(family, path, requirements, False, "incomplete (creation did not finish)")
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return EnvInfo(family, path, requirements, False, f"unreadable {marker.name}")
    if recorded.get("requirements_sha256") != _digest(requirements):
        return EnvInfo(family, path, requirements, False, f"stale ({requirements.name} changed)")
    return EnvInfo(family, path, requirements, True, f"built {recorded.get('created', '?')}")


def list_envs() -> list[EnvInfo]:
    """State of every family's environment, in name order."""
    return [env_status(family) for family in families()]


def missing_env_message(family: str) -> str:
    """The one-line instruction shown when a family's environment is not ready."""
    return f"run `mlipspace env create {family}` (environments live in {env_root()})"


def require_env(family: str) -> Path:
    """Python of a ready environment of ``family``; raises with the command to run otherwise."""
    info = env_status(family)
    if not info.ready:
        raise EnvironmentSetupError(
            f"the environment of model family {family!r} at {info.path} is {info.detail}: "
            + missing_env_message(family)
        )
    return env_python(family)


def _run(command: list[str], log: Path, echo: Callable[[str], None] | None) -> None:
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(command)}\n")
        f.flush()
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        assert process.stdout is not None
        tail: list[str] = []
        for line in process.stdout:
            f.write(line)
            tail = [*tail[-19:], line.rstrip()]
            if echo is not None:
                echo(line.rstrip())
        code = process.wait()
    if code != 0:
        raise EnvironmentSetupError(
            f"`{' '.join(command)}` failed with exit code {code}; last lines:\n"
            + "\n".join(tail)
            + f"\n(full log: {log})"
        )


def create_env(
    family: str,
    *,
    force: bool = False,
    python: str | None = None,
    echo: Callable[[str], None] | None = None,
) -> EnvInfo:
    """Build (or rebuild) the isolated environment of ``family``.

    Steps: a fresh venv; the pinned ``torch`` alone first (so that the local CPU wheel
    is reused and no other torch is pulled in); the ``# no-build-isolation`` pins,
    compiled against that torch; the remaining pins together with mlipspace's core
    dependencies, torch kept pinned; the ``# no-deps`` pins without dependencies; then ``pip install -e <repo> --no-deps``. A marker
    file records the pin file's digest; :func:`env_status` compares it.

    Parameters
    ----------
    family : str
        Family name with a pin file ``envs/<family>.txt``.
    force : bool
        Delete and rebuild an existing environment.
    python : str, optional
        Interpreter the venv is made from (default: the current one).
    echo : callable, optional
        Called with every line of pip's output.

    Returns
    -------
    EnvInfo
        The state after creation (``ready`` is True).
    """
    requirements_path = requirements_file(family)
    pins = parse_requirements(requirements_path)
    path = env_path(family)
    if env_status(family).ready and not force:
        return env_status(family)
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    log = path.parent / f"{family}.log"
    log.write_text(f"mlipspace env create {family} ({time.strftime('%Y-%m-%d %H:%M:%S')})\n")

    _run([python or sys.executable, "-m", "venv", str(path)], log, echo)
    pip = [str(env_python(family)), "-m", "pip", "install", "--disable-pip-version-check"]
    torch_pins = [str(p) for p in pins if _normalise(p.name) == "torch"]
    isolated = [str(p) for p in pins if p.no_build_isolation]
    no_deps = [str(p) for p in pins if p.no_deps]
    rest = [
        str(p)
        for p in pins
        if not (p.no_build_isolation or p.no_deps) and _normalise(p.name) != "torch"
    ]
    if torch_pins:
        _run([*pip, *torch_pins], log, echo)
    if isolated:
        _run([*pip, "setuptools", "wheel"], log, echo)
        _run([*pip, "--no-build-isolation", *torch_pins, *isolated], log, echo)
    _run([*pip, *torch_pins, *rest, *core_dependencies()], log, echo)
    if no_deps:
        # their declared dependencies would pull packages that break the environment
        # (mattersim: PyPI torchvision); what they import is pinned in the file instead
        _run([*pip, "--no-deps", *no_deps], log, echo)
    _run([*pip, "--no-deps", "-e", str(repo_root())], log, echo)
    # the environment must import mlipspace's worker and satisfy its own pins
    check = subprocess.run(
        [str(env_python(family)), "-m", "mlipspace.featurization.envs", "check", family],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        raise EnvironmentSetupError(
            f"environment of family {family!r} was built but fails its check:\n"
            f"{check.stdout}{check.stderr}(full log: {log})"
        )
    (path / READY_MARKER).write_text(
        json.dumps(
            {
                "family": family,
                "requirements": str(requirements_path),
                "requirements_sha256": _digest(requirements_path),
                "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                "python": check.stdout.strip(),
            },
            indent=1,
        )
    )
    return env_status(family)


def _check(family: str) -> int:
    """Entry of ``python -m mlipspace.featurization.envs check FAMILY`` inside an environment."""
    from . import child  # noqa: F401  (the worker's entry point must import)

    problems = pin_mismatches(family)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(sys.version.split()[0])
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through create_env
    if len(sys.argv) == 3 and sys.argv[1] == "check":
        sys.exit(_check(sys.argv[2]))
    print("usage: python -m mlipspace.featurization.envs check FAMILY", file=sys.stderr)
    sys.exit(2)
