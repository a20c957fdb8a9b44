"""What every package of the project shares and none owns, importing nothing of the project:

- ``fileio``: files written atomically, JSON read with one-line errors;
- ``errors``: other libraries' error messages as one line;
- ``images``: decoding image files;
- ``video``: reading video files and cameras, writing video files whole;
- ``devices``: contexts that exist.
"""
