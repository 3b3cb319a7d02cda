"""The API as an ASGI application for servers that import it, e.g. several worker processes:
``uvicorn api.asgi:app --workers 2`` (settings from the environment, like every service)."""

from __future__ import annotations

from api.app import create_app, keep_loaded_objects
from meterline.settings import get_settings

app = create_app(get_settings())
keep_loaded_objects()
