"""The service's limits and access settings (plain data: no web framework needed to read them)."""

import dataclasses
import ipaddress

TOKEN_ENV_VAR = "KERAS_MT3_SERVE_TOKEN"
MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ServiceSettings:
    """What the transcription service accepts and keeps.

    Attributes:
        max_upload_bytes: largest request body; larger ones get 413.
        max_audio_seconds: longest audio (read from the file's header); longer gets 413.
        async_over_seconds: audio longer than this becomes a job (202 + job URL) unless the
            client asks otherwise; shorter audio is answered in the same request.
        workers: threads running transcriptions. The model is not safe to call from two
            threads at once, so keep 1 unless the transcriber is known to be thread-safe.
        queue_size: transcriptions that may wait for a worker; when full, requests get 429.
        timeout_seconds: most time one transcription may run; checked between decoded batches.
        result_ttl_seconds: how long a finished job's result stays available.
        max_kept_results: most finished jobs kept; the oldest go first.
        max_result_bytes: most bytes of finished results kept (NoteSequence size).
        token: when set, every /v1 request needs `Authorization: Bearer <token>`.
    """

    max_upload_bytes: int = 100 * MIB
    max_audio_seconds: float = 600.0
    async_over_seconds: float = 30.0
    workers: int = 1
    queue_size: int = 8
    timeout_seconds: float = 600.0
    result_ttl_seconds: float = 600.0
    max_kept_results: int = 100
    max_result_bytes: int = 64 * MIB
    token: str = None

    def __post_init__(self):
        for name in ("max_upload_bytes", "workers", "max_kept_results", "max_result_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_audio_seconds", "timeout_seconds", "result_ttl_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.queue_size < 0 or self.async_over_seconds < 0:
            raise ValueError("queue_size and async_over_seconds cannot be negative")
        if self.token is not None and not self.token.strip():
            raise ValueError("token cannot be empty; leave it unset to turn tokens off")


def is_loopback(host):
    """Whether `host` (a name or address to bind) only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host, token):
    """A warning to show before binding `host`, or None when the binding is safe enough."""
    if is_loopback(host) or token:
        return None
    return (
        f"WARNING: serving on {host} without a token: anyone who can reach this address can "
        "upload audio and use this machine's CPU. Pass --token (or set "
        f"${TOKEN_ENV_VAR}) or bind 127.0.0.1."
    )
