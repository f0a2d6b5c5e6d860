"""examples/colab_demo.ipynb runs top to bottom outside Colab and leaves a real transcription."""

import json
import pathlib
import sys

import pytest

from keras_mt3.midi_io import load_midi

# The notebook picks its own backend (jax here); one run covers it.
pytestmark = [pytest.mark.backend_independent, pytest.mark.checkpoint]

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "examples" / "colab_demo.ipynb"
KERNEL_NAME = "keras-mt3-test"


@pytest.fixture
def kernel_of_this_interpreter(tmp_path, monkeypatch):
    """A kernelspec running the interpreter of the tests, found through JUPYTER_PATH, so the
    test needs no kernel installed beforehand (and cannot pick up another environment's)."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "keras-mt3 tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL_NAME


def test_notebook_runs_and_writes_a_transcription(
    kernel_of_this_interpreter, checkpoint_dir, tmp_path, monkeypatch
):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    # The kernel inherits this environment.
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setenv("KERAS_MT3_CHECKPOINT_DIR", str(checkpoint_dir))
    monkeypatch.setenv("KERAS_MT3_DEMO_MAX_SECONDS", "4")
    workdir = tmp_path / "run"
    workdir.mkdir()
    notebook = nbformat.read(NOTEBOOK, as_version=4)

    nbclient.NotebookClient(
        notebook,
        kernel_name=kernel_of_this_interpreter,
        timeout=600,
        resources={"metadata": {"path": str(workdir)}},
    ).execute()

    transcription = load_midi(workdir / "transcription.mid")
    assert len(transcription.notes) > 3
    assert max(note.end_time for note in transcription.notes) <= 4.5  # only the first 4 s
    assert (workdir / "transcription.png").stat().st_size > 10_000
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    outputs = [output for cell in code_cells for output in cell.outputs]
    printed = "".join(output.get("text", "") for output in outputs)
    assert "with the jax backend" in printed
    assert f"{len(transcription.notes)} notes" in printed
    displayed = [output for output in outputs if output.output_type == "display_data"]
    assert sum("image/png" in output.data for output in displayed) == 1
    assert sum("text/html" in output.data and "<audio" in output.data["text/html"]
               for output in displayed) == 2  # the input and the synthesized transcription
