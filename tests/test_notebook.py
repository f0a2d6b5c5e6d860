"""examples/colab_demo.ipynb runs top to bottom as in a fresh runtime: its own install cell
installs the built wheel into a new virtual environment outside the checkout, and the rest of
the notebook, run by that environment's kernel, leaves a real transcription of the demo clip
bundled in the wheel."""

import json

import pytest

from keras_mt3.midi_io import load_midi
from keras_mt3.version import __version__
from release_helpers import REPO_ROOT, run, venv_environment

# The notebook picks its own backend (jax here); one run covers it.
pytestmark = [pytest.mark.backend_independent, pytest.mark.checkpoint, pytest.mark.slow]

NOTEBOOK = REPO_ROOT / "examples" / "colab_demo.ipynb"
KERNEL_NAME = "keras-mt3-release-test"


def kernel_of(python, jupyter_dir):
    """A kernelspec running `python`, found through JUPYTER_PATH, so the test needs no kernel
    installed beforehand (and cannot pick up another environment's)."""
    spec_dir = jupyter_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "keras-mt3 release test",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return KERNEL_NAME


def test_notebook_installs_the_wheel_and_writes_a_transcription(
    release_dist, fresh_venv, checkpoint_dir, tmp_path, monkeypatch
):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    # The kernel inherits this environment, without anything that puts the checkout on its path.
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("KERAS_MT3_INSTALL_SPEC", str(release_dist.wheel))
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setenv("KERAS_MT3_CHECKPOINT_DIR", str(checkpoint_dir))
    monkeypatch.setenv("KERAS_MT3_DEMO_MAX_SECONDS", "4")
    workdir = tmp_path / "run"
    workdir.mkdir()
    assert REPO_ROOT not in workdir.parents
    notebook = nbformat.read(NOTEBOOK, as_version=4)

    nbclient.NotebookClient(
        notebook,
        kernel_name=kernel_of(fresh_venv, tmp_path / "jupyter"),
        timeout=600,
        resources={"metadata": {"path": str(workdir)}},
    ).execute()

    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    outputs = [output for cell in code_cells for output in cell.outputs]
    printed = "".join(output.get("text", "") for output in outputs)
    # The install cell installed the wheel, and the kernel imported it from the venv.
    venv = fresh_venv.parent.parent
    assert f"installing {release_dist.wheel}\n" in printed
    assert f"keras-mt3 {__version__} from {venv}/lib/" in printed

    transcription = load_midi(workdir / "transcription.mid")
    assert len(transcription.notes) > 3
    assert max(note.end_time for note in transcription.notes) <= 4.5  # only the first 4 s
    assert (workdir / "transcription.png").stat().st_size > 10_000
    assert "with the jax backend" in printed
    assert f"{len(transcription.notes)} notes" in printed
    displayed = [output for output in outputs if output.output_type == "display_data"]
    assert sum("image/png" in output.data for output in displayed) == 1
    assert sum("text/html" in output.data and "<audio" in output.data["text/html"]
               for output in displayed) == 2  # the input and the synthesized transcription
    # The wheel stays installed in the venv, not the checkout's editable copy.
    located = run([fresh_venv, "-c", "import keras_mt3; print(keras_mt3.__file__)"],
                  cwd=workdir, env=venv_environment()).stdout
    assert located.startswith(f"{venv}/lib/")
