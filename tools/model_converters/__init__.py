"""Models of other SSD implementations into this project's checkpoints.

mxnet-ssd (``-symbol.json`` + ``.params``):

- ``symbol_json``: MXNet ``-symbol.json`` files read as plain data (nothing in
  them is executed), attribute parsing and feature-map size arithmetic;
- ``mxnet_ssd_graph``: the detector an mxnet-ssd symbol describes (sources,
  extra layers, priors, heads, decoding), as a :class:`symbol.presets.Preset`;
- ``mxnet_ssd_weights``: which network a params file holds, and the mapping of
  its names onto this project's parameters;
- ``mxnet_ssd_checks``: the network built for a symbol, compared with it layer
  by layer;
- ``mxnet_ssd``: the command line, ``python -m tools.model_converters.mxnet_ssd``.

mmdetection (``.pth``):

- ``torch_pickle``: PyTorch checkpoints (both formats) read as NumPy arrays and
  plain containers by a restricted unpickler, without PyTorch, running nothing;
- ``mmdet_models``: mmdetection's SSD300, SSD512 and SSDLite (presets, priors,
  ``test_cfg``) and the config text a checkpoint carries, read as plain values;
- ``mmdet_weights``: which model a state dict holds, the names of before
  mmdetection 2.14, and the mapping onto this project's parameters;
- ``mmdet``: the command line, ``python -m tools.model_converters.mmdet``.

GluonCV (model-zoo ``.params``):

- ``gluoncv_zoo``: what each zoo name stands for (network, layout, classes);
- ``gluoncv_weights``: which network a params file holds, and the mapping;
- ``gluoncv``: the command line, ``python -m tools.model_converters.gluoncv``.

Shared: ``classes``, a converted model's class names (also used by
``tools.caffe_converter``).
"""
