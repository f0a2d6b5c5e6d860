"""The HTTP application: `create_app(transcriber)` returns an ASGI app (FastAPI) to run with
uvicorn. Routes:

- `POST /v1/transcriptions`: audio in (raw body or multipart), notes out as MIDI, JSON or CSV
  (`?format=` or `Accept`). Long audio (or `?async=true`) becomes a job: 202 + its URL.
- `GET /v1/transcriptions/{id}`: a job's state and progress; `.../result` its notes when done;
  `DELETE` cancels it.
- `GET /`: the transcription page (served from package data; nothing loads from elsewhere).
- `GET /healthz`, `GET /openapi.json`. The interactive docs pages are off: they load their
  scripts from a CDN.
"""

import asyncio
import contextlib
import hmac
import importlib.resources
import re
import shutil
import tempfile

from keras_mt3.errors import AudioLoadError, KerasMT3Error

try:
    from fastapi import Depends, FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise KerasMT3Error(
        f"the transcription service needs FastAPI and uvicorn ({error}); install them with "
        "`pip install 'keras-mt3[serve]'`"
    ) from None

from keras_mt3 import note_export
from keras_mt3.preprocessing import audio_io
from keras_mt3.service import jobs as jobs_lib
from keras_mt3.service.errors import ServiceError
from keras_mt3.service.settings import ServiceSettings
from keras_mt3.service.uploads import receive_upload
from keras_mt3.version import __version__

API_PREFIX = "/v1/transcriptions"
_STATIC = importlib.resources.files("keras_mt3.service") / "static"
# Accept media types -> output format; "*/*" and no Accept at all mean JSON.
_FORMAT_BY_MEDIA_TYPE = {
    **{media_type: name for name, (media_type, _) in note_export.FORMATS.items()},
    "audio/x-midi": "mid",
    "audio/mid": "mid",
    "audio/*": "mid",
    "text/*": "csv",
    "application/*": "json",
    "*/*": "json",
}
_DISCONNECT_POLL_SECONDS = 0.5
_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
        "audio/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}
_NOTES_CONTENT = {
    "application/json": {},
    "audio/midi": {"schema": {"type": "string", "format": "binary"}},
    "text/csv": {"schema": {"type": "string"}},
}


def create_app(transcriber, settings=None):
    """The transcription service around `transcriber` (e.g. an `MT3Transcriber`).

    `transcriber.transcribe(path, progress=False, progress_callback=fn)` must return a
    NoteSequence; it is called from `settings.workers` threads (default one). The worker
    threads and the folder holding uploads live while the app is served (its lifespan).
    """
    settings = settings or ServiceSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        app.state.workdir = tempfile.mkdtemp(prefix="keras-mt3-serve-")
        app.state.jobs = jobs_lib.JobQueue(transcriber, settings)
        try:
            yield
        finally:
            await asyncio.to_thread(app.state.jobs.close, 10.0)
            shutil.rmtree(app.state.workdir, ignore_errors=True)

    app = FastAPI(
        title="keras-mt3 transcription service",
        version=__version__,
        description="Audio in, notes out (MIDI, JSON or CSV), with MT3.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    _add_error_handlers(app)
    _add_page_routes(app)
    _add_api_routes(app, settings)
    return app


# ---- errors ------------------------------------------------------------------------------


def _error_response(error):
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _add_error_handlers(app):
    @app.exception_handler(ServiceError)
    async def service_error(request, error):
        return _error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, error):
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return _error_response(
            ServiceError(
                error.status_code, code, str(error.detail), getattr(error, "headers", None)
            )
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, error):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors()
        )
        return _error_response(
            ServiceError(400, "bad_request", f"bad request parameters: {problems}")
        )


# ---- the page and health -----------------------------------------------------------------


def _add_page_routes(app):
    app.mount("/static", StaticFiles(directory=str(_STATIC)), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse((_STATIC / "index.html").read_text(encoding="utf-8"))

    @app.get("/healthz", tags=["service"], summary="Liveness and queue state (no token needed)")
    async def healthz(request: Request):
        return {"status": "ok", "version": __version__, **request.app.state.jobs.stats()}


# ---- the API -----------------------------------------------------------------------------


def _add_api_routes(app, settings):
    authorized = [Depends(_token_check(settings.token))]

    @app.post(
        API_PREFIX,
        tags=["transcriptions"],
        summary="Transcribe an audio file",
        dependencies=authorized,
        status_code=200,
        openapi_extra={"requestBody": _UPLOAD_BODY},
        responses={
            200: {"description": "the notes", "content": _NOTES_CONTENT},
            202: {"description": "accepted as a job; poll the URL in Location"},
            400: {"description": "empty or malformed request"},
            401: {"description": "missing or wrong token"},
            406: {"description": "no acceptable output format"},
            413: {"description": "upload or audio over the server's limits"},
            415: {"description": "body is not audio"},
            422: {"description": "the audio cannot be decoded"},
            429: {"description": "queue full; retry after Retry-After seconds"},
        },
    )
    async def create_transcription(
        request: Request,
        format: str = Query(None, description="mid, json or csv (default: from Accept, else json)"),
        run_async: bool = Query(
            None,
            alias="async",
            description="answer 202 with a job URL at once (default: only for audio longer than "
            f"{settings.async_over_seconds:g} s)",
        ),
    ):
        format_name = _negotiate(format, request.headers.get("accept"))
        jobs = request.app.state.jobs
        if not jobs.has_room():
            raise _queue_full(jobs_lib.QueueFull(jobs.retry_after()))
        path, filename = await receive_upload(
            request, request.app.state.workdir, settings.max_upload_bytes
        )
        job = _submit(jobs, path, filename, settings)
        if run_async is None:
            run_async = job.audio_seconds > settings.async_over_seconds
        if run_async or "respond-async" in request.headers.get("prefer", ""):
            return JSONResponse(
                _job_status(request, job),
                status_code=202,
                headers={"Location": _job_url(request, job)},
            )
        try:
            if not await _wait_for(request, job):
                return Response(status_code=499)  # the client left; nobody reads this
            return _result_response(job, format_name)
        finally:
            jobs.forget(job.id)

    @app.get(
        API_PREFIX + "/{job_id}",
        tags=["transcriptions"],
        summary="A job's state and progress",
        dependencies=authorized,
    )
    async def get_transcription(request: Request, job_id: str):
        return _job_status(request, _find(request, job_id))

    @app.get(
        API_PREFIX + "/{job_id}/result",
        tags=["transcriptions"],
        summary="A finished job's notes",
        dependencies=authorized,
        responses={200: {"description": "the notes", "content": _NOTES_CONTENT}},
    )
    async def get_result(request: Request, job_id: str, format: str = Query(None)):
        format_name = _negotiate(format, request.headers.get("accept"))
        job = _find(request, job_id)
        if not job.finished:
            raise ServiceError(
                409,
                "not_finished",
                f"job {job_id} is {job.status}; poll {_job_url(request, job)} until it is done",
                headers={"Retry-After": "1"},
            )
        return _result_response(job, format_name)

    @app.delete(
        API_PREFIX + "/{job_id}",
        tags=["transcriptions"],
        summary="Cancel a job and drop its result",
        dependencies=authorized,
        status_code=204,
    )
    async def delete_transcription(request: Request, job_id: str):
        if request.app.state.jobs.forget(job_id) is None:
            raise _unknown_job(job_id)
        return Response(status_code=204)


def _token_check(token):
    async def check(request: Request):
        if token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ServiceError(
                401,
                "missing_token",
                "this server needs a token: send the header 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise ServiceError(
                401,
                "invalid_token",
                "the token is wrong",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )

    return check


def _negotiate(format_param, accept):
    """The output format: `?format=` if given, else the best match of the Accept header."""
    if format_param:
        try:
            return note_export.normalize_format(format_param)
        except KerasMT3Error as error:
            raise ServiceError(400, "unknown_format", str(error)) from None
    if not accept or not accept.strip():
        return "json"
    choices = []
    for position, item in enumerate(accept.split(",")):
        media_type, *params = [part.strip() for part in item.split(";")]
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and media_type.lower() in _FORMAT_BY_MEDIA_TYPE:
            choices.append((-quality, position, _FORMAT_BY_MEDIA_TYPE[media_type.lower()]))
    if not choices:
        raise ServiceError(
            406,
            "not_acceptable",
            f"cannot answer with {accept!r}; this server sends "
            + ", ".join(media_type for media_type, _ in note_export.FORMATS.values()),
        )
    return min(choices)[2]


def _submit(jobs, path, filename, settings):
    try:
        seconds = audio_io.audio_duration(path)
    except AudioLoadError as error:
        jobs_lib.remove_file(path)
        message = _without_temp_path(str(error), path, filename)
        raise ServiceError(422, "unreadable_audio", message) from None
    if seconds > settings.max_audio_seconds:
        jobs_lib.remove_file(path)
        raise ServiceError(
            413,
            "audio_too_long",
            f"the audio is {seconds:.1f} s long; this server transcribes at most "
            f"{settings.max_audio_seconds:g} s per request. Cut it into shorter pieces.",
        )
    try:
        return jobs.submit(jobs_lib.Job(path, seconds, filename))
    except jobs_lib.QueueFull as error:
        raise _queue_full(error) from None
    except jobs_lib.QueueClosed as error:
        raise ServiceError(
            503, "shutting_down", str(error), headers={"Retry-After": "30"}
        ) from None


def _queue_full(error):
    return ServiceError(
        429,
        "queue_full",
        f"{error}. This server transcribes one file at a time per worker and queues a few more.",
        headers={"Retry-After": str(error.retry_after)},
    )


async def _wait_for(request, job):
    """Waits until `job` finishes; False (and the job cancelled) if the client went away."""
    loop = asyncio.get_running_loop()
    finished = asyncio.Event()
    job.add_done_callback(lambda: loop.call_soon_threadsafe(finished.set))
    while not finished.is_set():
        try:
            await asyncio.wait_for(finished.wait(), _DISCONNECT_POLL_SECONDS)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                job.cancel()
                return False
    return True


def _find(request, job_id):
    job = request.app.state.jobs.get(job_id)
    if job is None:
        raise _unknown_job(job_id)
    return job


def _unknown_job(job_id):
    return ServiceError(
        404,
        "unknown_job",
        f"no job {job_id!r}: it never existed, was deleted, or its result expired",
    )


_JOB_ERRORS = {
    "audio": (422, "unreadable_audio"),
    "timeout": (504, "timeout"),
    "cancelled": (409, "cancelled"),
    "internal": (500, "internal_error"),
}


def _result_response(job, format_name):
    if job.status != jobs_lib.DONE:
        status, code = _JOB_ERRORS.get(job.error_kind, (500, "internal_error"))
        raise ServiceError(
            status, code, _without_temp_path(job.error, job.audio_path, job.filename)
        )
    media_type, extension = note_export.FORMATS[format_name]
    headers = {}
    if format_name != "json":
        headers["Content-Disposition"] = f'attachment; filename="{_download_stem(job)}{extension}"'
    return Response(
        note_export.encode_notes(job.result, format_name), media_type=media_type, headers=headers
    )


def _job_url(request, job):
    return str(request.url_for("get_transcription", job_id=job.id).path)


def _job_status(request, job):
    status = {
        "id": job.id,
        "status": job.status,
        "progress": job.progress(),
        "segments_done": job.segments_done,
        "segments_total": job.segments_total,
        "audio_seconds": job.audio_seconds,
        "filename": job.filename,
        "status_url": _job_url(request, job),
    }
    if job.status == jobs_lib.DONE:
        status["result_url"] = str(request.url_for("get_result", job_id=job.id).path)
        status["num_notes"] = len(job.result.notes)
    elif job.finished:
        code = _JOB_ERRORS.get(job.error_kind, (500, "internal_error"))[1]
        status["error"] = {
            "code": code,
            "message": _without_temp_path(job.error, job.audio_path, job.filename),
        }
    return status


def _download_stem(job):
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", (job.filename or "").rsplit(".", 1)[0]).strip("._")
    return stem or "transcription"


def _without_temp_path(message, path, filename):
    """Error messages name the upload, not the server's temporary file."""
    upload = f"the uploaded file '{filename}'" if filename else "the uploaded audio"
    return message.replace(f"audio file '{path}'", upload).replace(path, "the upload")
