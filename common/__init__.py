"""What every package of the project shares and none owns, importing nothing of the project:

- ``fileio``: files written atomically, JSON read with one-line errors;
- ``images``: decoding image files;
- ``devices``: contexts that exist.
"""
