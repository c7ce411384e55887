"""City assets of the four plates plus exposure: registry, import, links."""
