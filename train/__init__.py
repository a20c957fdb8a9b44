"""train package (filled in by later work)."""
