"""Fast, chunked ranking metrics and re-ranking (public API)."""
