"""The transcription web service: an HTTP API and a browser page around one transcriber.

`create_app(transcriber, settings)` builds the ASGI app (it needs the `serve` extra:
FastAPI + uvicorn); `keras-mt3 serve` runs it. `ServiceSettings` holds the limits.
"""

from keras_mt3.service.settings import ServiceSettings, exposure_warning, is_loopback
from keras_mt3.utils import lazy_module_getattr

__all__ = ["ServiceSettings", "create_app", "exposure_warning", "is_loopback"]

__getattr__ = lazy_module_getattr(__name__, {"create_app": "keras_mt3.service.app"})
