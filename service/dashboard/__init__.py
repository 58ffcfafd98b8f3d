"""The browser dashboard: static files under `static/`, served by `service.api.dashboard`."""

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
