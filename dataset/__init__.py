"""Detection data: annotation records, readers and augmentation.

- :mod:`dataset.factory`: ``open_dataset``, the one way every script opens a data set.
- :mod:`dataset.annotation`: the ``Annotation`` record (pixel corner boxes).
- :mod:`dataset.classes`: class names files beside records, look-alike inferred names.
- :mod:`dataset.voc`: Pascal VOC devkits and plain VOC-format folders.
- :mod:`dataset.coco`: COCO ``instances_*.json`` with contiguous labels.
- :mod:`dataset.synthetic`: a deterministic synthetic VOC-format set.
- :mod:`dataset.augment`: Caffe SSD's augmentation as pure NumPy functions.
- :mod:`dataset.loader`: samples to padded training/validation batches.
- :mod:`dataset.subset`: part of a reader; a seeded validation split.
- :mod:`dataset.recordio`: detection RecordIO (``.lst`` / ``.rec`` / ``.idx``) writer and reader.
"""

#: The training augmentations (:class:`dataset.loader.DetectionDataset`'s ``augment``): Caffe
#: SSD's, its shape-preserving part (colour, flip), none. Here, free of MXNet, for the
#: command lines' choices.
AUGMENTATIONS = ("caffe", "photometric", "none")
