"""cityrisk service: HTTP API, settings, database and CLI."""

__version__ = "0.1.0"
