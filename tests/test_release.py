"""The release as users get it: `python -m build` (sdist + wheel), `twine check`, complete
metadata, and the wheel installed without -e into a fresh virtual environment outside the
checkout, where the command line and the bundled demo clip must work. The notebook runs from
such an environment too (test_notebook.py), sharing the one wheel build of the session."""

import email.parser
import json
import re
import sys
import tarfile
import zipfile

import pytest

from keras_mt3.cli.main import SUBCOMMANDS
from keras_mt3.version import __version__
from release_helpers import REPO_ROOT, project_urls, run, venv_environment

pytestmark = pytest.mark.backend_independent

SOURCE_URL = project_urls()["Source"]
REPOSITORY_SPEC = f"keras-mt3 @ git+{SOURCE_URL}"
NOTEBOOK = REPO_ROOT / "examples" / "colab_demo.ipynb"


def package_files():
    """Every file of the keras_mt3 package in the checkout, as paths inside a wheel."""
    return {
        path.relative_to(REPO_ROOT).as_posix()
        for path in (REPO_ROOT / "keras_mt3").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def wheel_metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(f"keras_mt3-{__version__}.dist-info/METADATA").decode()
    return email.parser.Parser().parsestr(text)


def test_sdist_and_wheel_pass_twine_check(release_dist):
    result = run([sys.executable, "-m", "twine", "check", "--strict", *release_dist],
                 cwd=release_dist.wheel.parent)
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_wheel_metadata_is_complete(release_dist):
    metadata = wheel_metadata(release_dist.wheel)
    assert metadata["Name"] == "keras-mt3" and metadata["Version"] == __version__
    assert release_dist.wheel.name == f"keras_mt3-{__version__}-py3-none-any.whl"
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata["Requires-Python"] == ">=3.11"  # keras 3.15 and jax 0.10 need it
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert metadata.get_payload() == (REPO_ROOT / "README.md").read_text()
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL"))
    assert urls == project_urls() and all(url.startswith(SOURCE_URL) for url in urls.values())
    assert set(metadata.get_all("Provides-Extra")) == {
        "jax", "torch", "plot", "notebook", "serving", "serve", "hf", "kaggle", "tests"
    }
    classifiers = metadata.get_all("Classifier")
    assert "Programming Language :: Python :: 3" in classifiers and len(classifiers) >= 8
    assert f"## {__version__}" in (REPO_ROOT / "CHANGELOG.md").read_text()


def test_wheel_holds_every_package_file_and_nothing_else(release_dist):
    dist_info = f"keras_mt3-{__version__}.dist-info/"
    with zipfile.ZipFile(release_dist.wheel) as archive:
        names = set(archive.namelist())
    assert "keras_mt3/demo/piano_chorale.flac" in package_files()
    # No tests/ or examples/, and no module or data file left out.
    assert {name for name in names if not name.startswith(dist_info)} == package_files()
    assert f"{dist_info}licenses/LICENSE" in names


def test_sdist_holds_the_sources_licence_and_changelog(release_dist):
    with tarfile.open(release_dist.sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"setup.cfg", "pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md"} <= names
    assert package_files() - {name for name in names if name.startswith("keras_mt3/")} == set()


def install_texts():
    """Where users copy install commands from: the docs' code blocks, the notebook's cell."""
    texts = {}
    for name in ("README.md", "serving/README.md"):
        blocks = re.findall(r"```[a-z]*\n(.*?)```", (REPO_ROOT / name).read_text(), re.S)
        texts[name] = "".join(blocks)
    texts["notebook"] = "".join(json.loads(NOTEBOOK.read_text())["cells"][2]["source"])
    return texts


def test_install_commands_name_the_repository_of_setup_cfg():
    """keras-mt3 is not published: no command installs it by its bare name (which would fail,
    or fetch someone else's package), and every repository URL is setup.cfg's."""
    texts = install_texts()
    texts["CHANGELOG.md"] = (REPO_ROOT / "CHANGELOG.md").read_text()
    for name, text in texts.items():
        assert set(re.findall(r"git\+(https://[^\s\"'`]+)", text)) == {SOURCE_URL}, name
    for name, text in install_texts().items():
        for line in text.splitlines():
            if re.search(r"pip install .*keras-mt3", line):
                assert f"@ git+{SOURCE_URL}" in line, (name, line)
    install_cell = texts["notebook"]
    assert f'"{REPOSITORY_SPEC}"' in install_cell and "KERAS_MT3_INSTALL_SPEC" in install_cell


def test_the_wheel_works_from_a_fresh_venv_outside_the_checkout(
    release_dist, fresh_venv, tmp_path
):
    env = venv_environment()
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    run([fresh_venv, "-m", "pip", "install", "--disable-pip-version-check", "-q",
         release_dist.wheel], cwd=workdir, env=env)
    venv = fresh_venv.parent.parent
    located = run(
        [fresh_venv, "-c", "import keras_mt3, keras_mt3.demo as demo; "
         "print(keras_mt3.__file__); print(demo.demo_clip_path())"],
        cwd=workdir, env=env,
    ).stdout.split()
    assert all(path.startswith(f"{venv}/lib/") for path in located), located
    assert located[1].endswith("keras_mt3/demo/piano_chorale.flac")

    command = venv / "bin" / "keras-mt3"
    assert run([command, "--version"], cwd=workdir, env=env).stdout == f"keras-mt3 {__version__}\n"
    # A subcommand whose module is missing would silently drop out of the list.
    usage = run([command, "--help"], cwd=workdir, env=env).stdout
    listed = set(re.findall(r"^    (\w+)  ", usage, re.M))
    command_modules = {path.stem[: -len("_command")]
                       for path in (REPO_ROOT / "keras_mt3" / "cli").glob("*_command.py")}
    assert listed == command_modules and command_modules <= set(SUBCOMMANDS), usage
