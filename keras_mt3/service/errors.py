"""HTTP errors of the service: a status, a stable code for programs, a message for people."""


class ServiceError(Exception):
    """Answered as `{"error": {"status", "code", "message"}}` with `status` and `headers`."""

    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self):
        return {"error": {"status": self.status, "code": self.code, "message": self.message}}


def upload_too_large(limit_bytes):
    return ServiceError(
        413,
        "upload_too_large",
        f"the upload is larger than this server's limit of {_size(limit_bytes)} "
        f"({limit_bytes} bytes); send a shorter clip or compress it (FLAC, OGG, MP3)",
    )


def _size(num_bytes):
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.4g} {unit}"
    return f"{num_bytes} bytes"
