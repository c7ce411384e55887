"""Vector tiles of the layer registry: MVT, TileJSON, the layer list, a version-keyed cache."""
