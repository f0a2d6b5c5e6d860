"""The installed `keras-mt3` console script: usage errors, `--backend`, Ctrl-C, the command
table. The script runs as installed, in the environment as is."""

import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import soundfile

from keras_mt3.cli import main as cli_main

pytestmark = pytest.mark.backend_independent

SCRIPT = shutil.which("keras-mt3")
needs_script = pytest.mark.skipif(
    SCRIPT is None, reason="the keras-mt3 console script is not on PATH (pip install -e .)"
)


def run_script(*arguments, env=None, timeout=300):
    return subprocess.run(
        [SCRIPT, *arguments], capture_output=True, text=True, timeout=timeout,
        env=dict(os.environ, **(env or {})),
    )


@needs_script
def test_help_lists_every_command_and_usage_errors_exit_2():
    listed = run_script("--help")
    assert listed.returncode == 0
    for name in cli_main.SUBCOMMANDS:
        assert name in listed.stdout
    for arguments, message in [
        ((), "the following arguments are required: COMMAND"),
        (("nosuch",), "invalid choice: 'nosuch'"),
        (("transcribe",), "the following arguments are required: inputs, -o/--output"),
        (("--backend", "numpy", "transcribe", "x.wav", "-o", "x.mid"), "invalid choice: 'numpy'"),
    ]:
        completed = run_script(*arguments)
        assert completed.returncode == 2, (arguments, completed.stderr)
        assert "usage: keras-mt3" in completed.stderr and message in completed.stderr
        assert "Traceback" not in completed.stderr


@needs_script
def test_backend_flag_wins_over_the_environment(tmp_path):
    # Only the torch backend refuses --data-parallel, so the message shows which one ran.
    completed = run_script(
        "--backend", "torch", "train", "--synthetic", "1", "--data-parallel", "-o",
        str(tmp_path), env={"KERAS_BACKEND": "jax"},
    )
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert "keras-mt3 train: error: data-parallel training supports the jax and tensorflow" in (
        completed.stderr
    )


@pytest.mark.slow
@needs_script
def test_ctrl_c_exits_130_without_a_traceback_or_a_partial_file(tmp_path):
    from helpers import tiny_mt3_backbone

    from keras_mt3.constants import MAX_DECODE_LENGTH
    from keras_mt3.models.mt3_transcriber import MT3Transcriber

    # A random tiny model rarely emits EOS, so it decodes every segment to full length.
    backbone = tiny_mt3_backbone(max_decoder_length=MAX_DECODE_LENGTH)
    preset = MT3Transcriber(backbone).save_to_preset(tmp_path / "preset")
    rng = np.random.default_rng(0)
    soundfile.write(tmp_path / "a.wav", rng.normal(scale=0.1, size=16000), 16000)
    soundfile.write(tmp_path / "b.wav", rng.normal(scale=0.1, size=16000 * 600), 16000)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [SCRIPT, "--backend", "jax", "transcribe", str(tmp_path / "a.wav"),
         str(tmp_path / "b.wav"), "-o", str(out), "--preset", str(preset), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (out / "a.mid").is_file():  # a.wav done: b.wav, 10 minutes, is under way
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "a.wav was not transcribed in time"
            time.sleep(0.2)
        time.sleep(1.0)
        assert process.poll() is None, "b.wav was done too soon for the test"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert sorted(path.name for path in out.iterdir()) == ["a.mid"]  # no b.mid, no temp file


def test_a_listed_command_without_its_module_fails_loudly(monkeypatch):
    monkeypatch.setattr(cli_main, "SUBCOMMANDS", (*cli_main.SUBCOMMANDS, "nosuch"))
    with pytest.raises(ImportError, match="`nosuch` command is listed but .*nosuch_command.py"):
        cli_main.build_parser()


def test_every_decode_batch_size_help_names_the_models_default(capsys):
    from keras_mt3.models.mt3_transcriber import DEFAULT_DECODE_BATCH_SIZE

    for command in ("transcribe", "evaluate", "plot", "serve", "export"):
        with pytest.raises(SystemExit):
            cli_main.main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        default = f"(default: {DEFAULT_DECODE_BATCH_SIZE})"
        assert f"segments decoded together; fewer use less memory {default}" in text, command
