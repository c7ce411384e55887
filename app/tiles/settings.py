"""Tile settings, read from ``CITYRISK_TILE_*`` environment variables (or ``.env``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TileSettings(BaseSettings):
    """Limits and cache of the tile endpoints; built at start-up, never at import."""

    model_config = SettingsConfigDict(
        env_prefix="CITYRISK_TILE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    max_features: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Most raw features per layer per tile."
    )
    statement_timeout_ms: int = Field(
        default=5_000, ge=50, le=600_000, description="SET LOCAL statement_timeout per tile."
    )
    cache_mb: float = Field(
        default=64, ge=0, le=65_536, description="In-process tile cache size (0: no cache)."
    )
    buffer: int = Field(default=64, ge=0, le=1024, description="MVT buffer in tile units.")
