"""tools package (filled in by later work)."""
