"""Pure spatial algorithms: no HTTP, no database session."""
