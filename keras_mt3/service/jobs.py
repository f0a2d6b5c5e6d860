"""Transcription jobs: a bounded queue, worker threads sharing one model, and a bounded store
of finished results.

Nothing here knows about HTTP. One model instance cannot safely run two transcriptions at
once, so by default a single worker runs them one after another; concurrency comes from
queueing, and the queue's bound turns overload into an immediate refusal instead of a growing
backlog.
"""

import collections
import contextlib
import logging
import math
import os
import queue
import secrets
import threading
import time

from keras_mt3.errors import KerasMT3Error

logger = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
# Until a job has finished, Retry-After hints assume a transcription takes this long.
_DEFAULT_JOB_SECONDS = 10.0


class QueueFull(Exception):
    """No room for another job; retry after `retry_after` seconds."""

    def __init__(self, retry_after):
        super().__init__(f"the transcription queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


class QueueClosed(Exception):
    """The queue is shutting down and takes no more jobs."""


class _Stop(Exception):
    """Raised from the progress callback to end a transcription early."""


class Job:
    """One transcription: its audio file, state, progress and, when done, the NoteSequence.

    The audio file belongs to the job and is deleted when the job finishes or is dropped.
    """

    def __init__(self, audio_path, audio_seconds, filename=None):
        self.id = secrets.token_urlsafe(12)  # unguessable: a job URL is its owner's handle
        self.audio_path = audio_path
        self.audio_seconds = audio_seconds
        self.filename = filename
        self.status = QUEUED
        self.segments_done = 0
        self.segments_total = None
        self.result = None
        self.result_bytes = 0
        self.error = None
        self.error_kind = None  # "audio", "timeout", "cancelled" or "internal"
        self.created = time.time()
        self.started_at = None
        self.finished_at = None  # monotonic, for expiry
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._callbacks = []
        self._lock = threading.Lock()

    @property
    def finished(self):
        return self._finished.is_set()

    def wait(self, timeout=None):
        return self._finished.wait(timeout)

    def add_done_callback(self, callback):
        """Calls `callback()` once the job has finished (at once if it already has)."""
        with self._lock:
            if not self.finished:
                self._callbacks.append(callback)
                return
        callback()

    def cancel(self):
        """Asks the job to stop; a running one stops after its current batch."""
        self._cancel.set()

    def progress(self):
        """Fraction of segments decoded (0..1), or None while the total is unknown."""
        if self.status == DONE:
            return 1.0
        if not self.segments_total:
            return None
        return min(1.0, self.segments_done / self.segments_total)

    def _finish(self, status, result=None, error=None, error_kind=None):
        self.status, self.result, self.error, self.error_kind = status, result, error, error_kind
        self.result_bytes = result.ByteSize() if result is not None else 0
        self.finished_at = time.monotonic()
        remove_file(self.audio_path)
        with self._lock:
            self._finished.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a waiter that went away must not break the worker
                logger.exception("job %s: done callback failed", self.id)


class JobQueue:
    """Runs `transcriber.transcribe(path, progress=False, progress_callback=...)` for
    submitted jobs on `settings.workers` threads, at most `settings.queue_size` waiting.

    Finished jobs stay retrievable by id for `settings.result_ttl_seconds`, at most
    `settings.max_kept_results` of them and `settings.max_result_bytes` in all.
    """

    def __init__(self, transcriber, settings):
        self.transcriber = transcriber
        self.settings = settings
        self._pending = queue.Queue()
        self._jobs = collections.OrderedDict()  # id -> Job, oldest first
        self._lock = threading.Lock()
        self._waiting = 0
        self._running = 0
        self._closed = False
        self._job_seconds = None  # moving average, for Retry-After
        self._threads = [
            threading.Thread(target=self._work, name=f"keras-mt3-transcribe-{i}", daemon=True)
            for i in range(settings.workers)
        ]
        for thread in self._threads:
            thread.start()

    # ---- submitting and looking up ------------------------------------------------------

    def has_room(self):
        with self._lock:
            return not self._closed and not self._full()

    def submit(self, job):
        """Queues `job`. Raises QueueFull or QueueClosed (the job's file is then deleted)."""
        with self._lock:
            if self._closed:
                remove_file(job.audio_path)
                raise QueueClosed("the service is shutting down")
            if self._full():
                remove_file(job.audio_path)
                raise QueueFull(self._retry_after())
            self._waiting += 1
            self._jobs[job.id] = job
            self._prune()
        self._pending.put(job)
        return job

    def get(self, job_id):
        """The job with this id, or None if unknown or expired."""
        with self._lock:
            self._prune()
            return self._jobs.get(job_id)

    def forget(self, job_id):
        """Drops a job (cancelling it if unfinished); returns it, or None if unknown."""
        with self._lock:
            job = self._jobs.pop(job_id, None)
        if job is not None:
            job.cancel()
        return job

    def stats(self):
        with self._lock:
            self._prune()
            finished = [job for job in self._jobs.values() if job.finished]
            return {
                "workers": self.settings.workers,
                "running": self._running,
                "queued": self._waiting,
                "queue_size": self.settings.queue_size,
                "kept_results": len(finished),
                "kept_result_bytes": sum(job.result_bytes for job in finished),
            }

    def close(self, timeout=None):
        """Refuses new jobs, cancels waiting ones, and waits for the workers to stop."""
        with self._lock:
            self._closed = True
            unfinished = [job for job in self._jobs.values() if not job.finished]
        for job in unfinished:
            job.cancel()
        for _ in self._threads:
            self._pending.put(None)
        for thread in self._threads:
            thread.join(timeout)

    # ---- the workers ----------------------------------------------------------------------

    def _full(self):
        """Whether every idle worker and queue slot is taken. Callers hold the lock."""
        idle = self.settings.workers - self._running
        return self._waiting >= self.settings.queue_size + idle

    def _work(self):
        while True:
            job = self._pending.get()
            if job is None:
                return
            with self._lock:
                self._waiting -= 1
                self._running += 1
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._running -= 1
                    self._prune()

    def _run(self, job):
        if job._cancel.is_set():
            job._finish(CANCELLED, error="the job was cancelled", error_kind="cancelled")
            return
        job.status, job.started_at = RUNNING, time.monotonic()
        deadline = job.started_at + self.settings.timeout_seconds

        def on_progress(done, total):
            job.segments_done, job.segments_total = done, total
            if job._cancel.is_set() or time.monotonic() > deadline:
                raise _Stop()

        try:
            result = self.transcriber.transcribe(
                job.audio_path, progress=False, progress_callback=on_progress
            )
        except _Stop:
            if job._cancel.is_set():
                job._finish(CANCELLED, error="the job was cancelled", error_kind="cancelled")
            else:
                job._finish(
                    FAILED,
                    error=f"the transcription took longer than the server's limit of "
                    f"{self.settings.timeout_seconds:g} s and was stopped",
                    error_kind="timeout",
                )
        except KerasMT3Error as error:
            job._finish(FAILED, error=str(error), error_kind="audio")
        except Exception:
            logger.exception("job %s: transcription failed", job.id)
            job._finish(
                FAILED, error="the transcription failed inside the server", error_kind="internal"
            )
        else:
            job._finish(DONE, result=result)
            self._record_duration(time.monotonic() - job.started_at)

    def _record_duration(self, seconds):
        with self._lock:
            previous = self._job_seconds
            self._job_seconds = seconds if previous is None else 0.7 * previous + 0.3 * seconds

    def retry_after(self):
        """Seconds until a queue slot is likely free: one job's time, as measured so far."""
        with self._lock:
            return self._retry_after()

    def _retry_after(self):
        per_job = self._job_seconds if self._job_seconds is not None else _DEFAULT_JOB_SECONDS
        return max(1, math.ceil(per_job / self.settings.workers))

    def _prune(self):
        """Drops finished jobs past their time, then the oldest while over the count or size
        bounds. Callers hold the lock."""
        now = time.monotonic()
        finished = [job for job in self._jobs.values() if job.finished]
        expired = [
            job for job in finished if now - job.finished_at > self.settings.result_ttl_seconds
        ]
        kept = [job for job in finished if job not in expired]
        total_bytes = sum(job.result_bytes for job in kept)
        while kept and (
            len(kept) > self.settings.max_kept_results
            or total_bytes > self.settings.max_result_bytes
        ):
            oldest = kept.pop(0)
            total_bytes -= oldest.result_bytes
            expired.append(oldest)
        for job in expired:
            self._jobs.pop(job.id, None)


def remove_file(path):
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
