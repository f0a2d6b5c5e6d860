"""Building the release artifacts and installing them as a user would, for the release tests.

The wheel is installed without -e into a virtual environment outside the checkout, so a file
missing from the package data or an import of something that only exists in the checkout
fails there. The environment is made with `--system-site-packages`: it reuses this
environment's installed dependencies (nothing is downloaded; pip finds them satisfied), while
its own site-packages, first on its path, hold the wheel's keras_mt3 rather than any editable
install of the checkout.
"""

import configparser
import importlib.util
import os
import pathlib
import subprocess
import sys
from typing import NamedTuple

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


class ReleaseDist(NamedTuple):
    sdist: pathlib.Path
    wheel: pathlib.Path


def run(command, cwd, env=None, timeout=600):
    """Runs `command`; on failure, fails the test with the command's output."""
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        pytest.fail(
            f"`{' '.join(map(str, command))}` exited with {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}",
            pytrace=False,
        )
    return result


def build_release(out_dir):
    """`python -m build` of the checkout (sdist, then the wheel built from that sdist) into
    `out_dir`. Without build isolation, so it runs offline on the installed setuptools."""
    for module in ("build", "twine"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"{module} is not installed; `pip install -e \".[tests]\"` provides it",
                        pytrace=False)
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out_dir, REPO_ROOT],
        cwd=out_dir)
    (sdist,) = out_dir.glob("*.tar.gz")
    (wheel,) = out_dir.glob("*.whl")
    return ReleaseDist(sdist, wheel)


def make_venv(directory):
    """A fresh virtual environment in `directory` (see the module docstring); returns its
    python. It has no pip of its own: `python -m pip` runs the shared one, which installs into
    the environment that runs it."""
    run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", directory],
        cwd=directory.parent)
    return directory / "bin" / "python"


def venv_environment():
    """This process's environment without what could put the checkout on a child's path."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def project_urls():
    """`[metadata] project_urls` of setup.cfg, the one place the project's URLs are defined."""
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg")
    lines = parser["metadata"]["project_urls"].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split("=", 1)) for line in lines)
