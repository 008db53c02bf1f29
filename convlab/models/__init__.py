"""Model table (filled in at integration)."""
