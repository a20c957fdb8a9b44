"""Caffe SSD models into this project's checkpoints, with protobuf alone (no Caffe install).

- ``caffe.proto`` / ``caffe_pb2.py``: the subset of Caffe's schema SSD files use
  (``generate_proto.py`` regenerates the module);
- ``reader``: prototxts (new and V1 formats), caffemodels, label maps;
- ``converter``: the checks and the weight mapping onto the Gluon SSD;
- ``priors``: Caffe's PriorBox and shape arithmetic in NumPy;
- ``writer``: caffemodels with random weights (tests, benchmarks);
- ``convert_model.py`` and ``compare.py``: the command-line tools.
"""
