"""meterline HTTP API (FastAPI): accounts, usage, top-ups, meters. See `api.app.create_app`."""
