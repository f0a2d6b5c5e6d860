"""Receiving audio: a raw or multipart request body streamed to a temporary file, size-capped.

The body is never held in memory whole, and the byte limit is enforced while reading, so a
client that lies about (or omits) Content-Length still cannot send more than the limit.
"""

import asyncio
import os
import re
import shutil
import tempfile

from keras_mt3.service.errors import ServiceError, upload_too_large

# Raw bodies: the file extension libsndfile is told, from the Content-Type.
_SUFFIX_BY_MEDIA_TYPE = {
    "audio/wav": ".wav",
    "audio/wave": ".wav",
    "audio/x-wav": ".wav",
    "audio/vnd.wave": ".wav",
    "audio/flac": ".flac",
    "audio/x-flac": ".flac",
    "audio/ogg": ".ogg",
    "audio/vorbis": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/aiff": ".aiff",
    "audio/x-aiff": ".aiff",
}
_RAW_MEDIA_TYPES = ("application/octet-stream",)
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,5}$")


async def receive_upload(request, directory, max_bytes):
    """Saves the request's audio under `directory`; returns `(path, filename or None)`.

    Raises:
        ServiceError: 400 empty body or no file part, 413 over `max_bytes`, 415 a body that is
            neither audio, application/octet-stream nor multipart/form-data.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise upload_too_large(max_bytes)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = _limited(request.stream(), max_bytes)
    if media_type == "multipart/form-data":
        path, filename = await _receive_multipart(request, body, directory)
    elif not media_type or media_type.startswith("audio/") or media_type in _RAW_MEDIA_TYPES:
        path, filename = (
            await _receive_raw(body, directory, _SUFFIX_BY_MEDIA_TYPE.get(media_type, "")),
            None,
        )
    else:
        raise ServiceError(
            415,
            "unsupported_media_type",
            f"cannot take a {media_type} body: send the audio file itself (Content-Type audio/* "
            "or application/octet-stream) or as a multipart/form-data field named 'file', e.g. "
            "curl -F file=@song.wav",
        )
    if os.path.getsize(path) == 0:
        os.unlink(path)
        raise ServiceError(400, "empty_upload", "the upload is empty (0 bytes); send an audio file")
    return path, filename


async def _limited(stream, max_bytes):
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > max_bytes:
            raise upload_too_large(max_bytes)
        yield chunk


async def _receive_raw(body, directory, suffix):
    path, handle = _new_file(directory, suffix)
    try:
        with handle:
            async for chunk in body:
                handle.write(chunk)
    except BaseException:
        os.unlink(path)
        raise
    return path


async def _receive_multipart(request, body, directory):
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    try:
        form = await MultiPartParser(request.headers, body, max_files=1, max_fields=8).parse()
    except MultiPartException as error:
        raise ServiceError(
            400, "bad_multipart", f"the multipart body is malformed: {error.message}"
        ) from None
    try:
        uploads = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not uploads:
            raise ServiceError(
                400,
                "no_file",
                "the multipart body has no file; send the audio as a file field, e.g. "
                "curl -F file=@song.wav",
            )
        upload = uploads[0]
        path, handle = _new_file(directory, _suffix(upload.filename))
        try:
            with handle:  # off the event loop: the file may be large
                await asyncio.to_thread(shutil.copyfileobj, upload.file, handle)
        except BaseException:
            os.unlink(path)
            raise
        return path, upload.filename
    finally:
        await form.close()


def _new_file(directory, suffix):
    fd, path = tempfile.mkstemp(prefix="upload-", suffix=suffix, dir=directory)
    return path, os.fdopen(fd, "wb")


def _suffix(filename):
    """The upload's extension, so that the audio reader sees `.mp3` etc.; odd ones are dropped."""
    suffix = os.path.splitext(os.path.basename(filename or ""))[1]
    return suffix.lower() if _SAFE_SUFFIX.match(suffix) else ""
