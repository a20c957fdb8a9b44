"""dataset package (filled in by later work)."""
