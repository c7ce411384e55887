"""The map page (``GET /``, ``GET /map``) and the vendored browser assets it loads."""
