"""The REST API: `create_app(db)` (app), served by `arrears serve` (serve)."""

from arrears.api.app import create_app

__all__ = ["create_app"]
