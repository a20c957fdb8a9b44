"""Command-line tools beside the three root scripts: dataset preparation and browsing
(``prepare_dataset``, ``browse_dataset``, ``make_synthetic``), model conversion
(``caffe_converter``, ``model_converters``) and its check (``compare_detections``), ONNX
export (``export_onnx``), INT8 / bfloat16 checkpoints for the CPU (``quantize``),
distributed launch (``launch``) and the
pieces the command lines share (``cli``, ``benchmarking``)."""
