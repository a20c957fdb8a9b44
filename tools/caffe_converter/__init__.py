"""caffe_converter package (filled in by later work)."""
