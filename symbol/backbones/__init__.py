"""Backbones: each maps a preprocessed image to the list of SSD source feature maps.

A backbone is a ``HybridBlock`` with a ``source_channels`` attribute (channels
of each returned map) built by a function ``build(preset, **kwargs)``.
"""
