"""Registry of risk layers: how each is queried, styled and tiled."""
