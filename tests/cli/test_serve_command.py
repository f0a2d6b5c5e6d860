"""`keras-mt3 serve`: arguments to settings, the exposure warning, and the hand-off to uvicorn."""

import pytest

from keras_mt3.cli import common
from keras_mt3.cli.main import main
from keras_mt3.service.settings import MIB, TOKEN_ENV_VAR

pytestmark = pytest.mark.backend_independent


@pytest.fixture
def started(monkeypatch):
    """Records what would be served instead of loading MT3 and blocking in uvicorn."""
    import uvicorn

    calls = {}
    monkeypatch.setattr(common, "load_transcriber", lambda args: "the model")
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.update(app=app, **kwargs))
    monkeypatch.delenv(TOKEN_ENV_VAR, raising=False)
    return calls


def test_defaults_serve_on_loopback_without_warning(started, capsys):
    assert main(["serve"]) == 0
    assert (started["host"], started["port"]) == ("127.0.0.1", 8000)
    settings = started["app"].state.settings
    assert settings.token is None and settings.max_upload_bytes == 100 * MIB
    assert "WARNING" not in capsys.readouterr().err


def test_limits_and_token_come_from_arguments_or_environment(started, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV_VAR, "from-env")
    main(
        [
            "serve",
            "--port",
            "9001",
            "--max-upload-mb",
            "2",
            "--max-audio-seconds",
            "30",
            "--queue-size",
            "3",
            "--timeout",
            "60",
            "--result-ttl",
            "5",
        ]
    )
    settings = started["app"].state.settings
    assert started["port"] == 9001 and settings.token == "from-env"
    assert (settings.max_upload_bytes, settings.max_audio_seconds) == (2 * MIB, 30)
    assert (settings.queue_size, settings.timeout_seconds, settings.result_ttl_seconds) == (
        3,
        60,
        5,
    )
    main(["serve", "--token", "given"])
    assert started["app"].state.settings.token == "given"


def test_other_host_without_token_warns_loudly(started, capsys):
    assert main(["serve", "--host", "0.0.0.0"]) == 0
    err = capsys.readouterr().err
    assert "WARNING: serving on 0.0.0.0 without a token" in err and "!" * 40 in err
    assert main(["serve", "--host", "0.0.0.0", "--token", "t"]) == 0
    assert "WARNING" not in capsys.readouterr().err


def test_bad_setting_is_a_clear_error_before_loading_anything(started, capsys):
    assert main(["serve", "--queue-size", "-1"]) == 2
    assert "bad service setting: queue_size" in capsys.readouterr().err
    assert "app" not in started


def test_help_names_the_api_and_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "/v1/transcriptions" in text and "127.0.0.1" in text and "8000" in text
