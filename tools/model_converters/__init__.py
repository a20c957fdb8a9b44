"""Models of other MXNet SSD implementations into this project's checkpoints.

- ``symbol_json``: MXNet ``-symbol.json`` files read as plain data (nothing in
  them is executed), attribute parsing and feature-map size arithmetic;
- ``mxnet_ssd_graph``: the detector an mxnet-ssd symbol describes (sources,
  extra layers, priors, heads, decoding), as a :class:`symbol.presets.Preset`;
- ``mxnet_ssd_weights``: which network a params file holds, and the mapping of
  its names onto this project's parameters;
- ``mxnet_ssd_checks``: the network built for a symbol, compared with it layer
  by layer;
- ``mxnet_ssd``: the command line, ``python -m tools.model_converters.mxnet_ssd``;
- ``classes``: a converted model's class names (shared with ``tools.caffe_converter``).
"""
