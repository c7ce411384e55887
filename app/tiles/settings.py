"""Tile settings, read from ``CITYRISK_TILE_*`` environment variables (or ``.env``)."""

from __future__ import annotations

from typing import Literal

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
    pool_size: int = Field(
        default=4, ge=1, le=64, description="Most database connections the tile routes hold."
    )
    pool_timeout_s: float = Field(
        default=10, gt=0, le=600, description="Longest wait for a free tile connection."
    )
    freshness: Literal["notify", "strict"] = Field(
        default="notify",
        description=(
            "How a tile request learns the data versions. notify: kept in memory and dropped "
            "by NOTIFY at every versioned commit (no database round trip on a cache hit); "
            "strict: read per request, shared by requests arriving together."
        ),
    )
