"""evaluate package (filled in by later work)."""
