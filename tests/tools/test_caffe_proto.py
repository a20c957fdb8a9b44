"""The protobuf-only Caffe reader: the schema, prototxts in both formats, caffemodels, label maps."""
from __future__ import annotations

import numpy as np
import pytest

from tools.caffe_converter import caffe_pb2, generate_proto, reader, writer


def test_generated_module_is_current():
    pytest.importorskip("grpc_tools", reason="regenerating caffe_pb2.py needs grpcio-tools")
    assert generate_proto.MODULE.read_text(encoding="utf-8") == \
        generate_proto.render_module(generate_proto.compile_descriptor())


def test_caffe_field_numbers():
    fields = lambda m: {f.name: f.number for f in m.DESCRIPTOR.fields}  # noqa: E731
    net, layer, v1 = fields(caffe_pb2.NetParameter), fields(caffe_pb2.LayerParameter), \
        fields(caffe_pb2.V1LayerParameter)
    assert (net["layer"], net["layers"], net["input"], net["input_shape"], net["input_dim"]) == (100, 2, 3, 8, 4)
    assert (layer["blobs"], layer["convolution_param"], layer["flatten_param"], layer["permute_param"],
            layer["prior_box_param"], layer["detection_output_param"], layer["norm_param"]) == \
        (7, 106, 135, 202, 203, 204, 206)
    assert (v1["blobs"], v1["type"], v1["convolution_param"]) == (6, 5, 10)
    assert caffe_pb2.V1LayerParameter.CONVOLUTION == 4 and caffe_pb2.V1LayerParameter.POOLING == 17


def test_new_and_old_prototxt_formats(fixtures_dir):
    new = reader.read_prototxt(fixtures_dir / "caffe" / "VGG_VOC0712_SSD_300x300_deploy.prototxt")
    assert new.input_shape == (1, 3, 300, 300)
    assert new.layer("conv4_3_norm").type == "Normalize"
    assert new.layer("fc6").param.convolution_param.dilation == [6]
    old = reader.read_prototxt(fixtures_dir / "caffe" / "VGG_ILSVRC_16_layers_fc_reduced_deploy.prototxt")
    assert old.input_shape == (10, 3, 500, 500)
    assert [l.type for l in old.layers[:5]] == ["Convolution", "ReLU", "Convolution", "ReLU", "Pooling"]
    assert old.layer("fc7").param.convolution_param.num_output == 1024


def test_caffemodel_round_trip_and_unknown_fields(fixtures_dir, tmp_path):
    net = reader.read_prototxt(fixtures_dir / "caffe" / "MobileNetSSD_deploy.prototxt")
    blobs = writer.random_blobs(net, 1)
    path = writer.write_caffemodel(tmp_path / "m.caffemodel", net, blobs)
    # Fields this schema does not know (a training-only message, a new scalar) are skipped.
    unknown = writer._field(100, writer._field(1, b"extra_layer") + writer._field(999, b"\x01\x02") +
                            b"\xa8\x3e\x05") + writer._field(77, b"whatever")
    path.write_bytes(path.read_bytes() + unknown)
    read = reader.read_caffemodel(path)
    assert set(read) == set(blobs)
    for name, arrays in blobs.items():
        for i, expected in enumerate(arrays):
            got = reader.blob_array(read[name][i], expected.shape, name)
            np.testing.assert_array_equal(got, expected)


def test_legacy_blob_shape():
    blob = caffe_pb2.BlobProto(num=1, channels=1, height=1, width=3, data=[1, 2, 3])
    np.testing.assert_array_equal(reader.blob_array(blob, (3,), "b"), [1, 2, 3])
    blob = caffe_pb2.BlobProto(num=2, channels=3, height=1, width=1, data=range(6))
    assert reader.blob_array(blob, (2, 3, 1, 1), "b").shape == (2, 3, 1, 1)
    with pytest.raises(ValueError, match=r"layer x blob 0 has shape \[2, 3, 1, 1\], expected \[6\]"):
        reader.blob_array(blob, (6,), "layer x blob 0")
    short = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[4]), data=[1, 2])
    with pytest.raises(ValueError, match="holds 2 values"):
        reader.blob_array(short, (4,), "b")


def test_labelmap(fixtures_dir, tmp_path):
    names = reader.read_labelmap(fixtures_dir / "caffe" / "labelmap_voc.prototxt")
    assert len(names) == 20 and names[0] == "aeroplane" and names[14] == "person"
    bad = tmp_path / "labelmap.prototxt"
    bad.write_text('item { name: "a" label: 0 }\nitem { name: "b" label: 5 }\n')
    with pytest.raises(ValueError, match="consecutive"):
        reader.read_labelmap(bad)


def test_prototxt_errors(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('layer {\n  name: "a"\n  type: "Convolution"\n  convolution_param { num_output: x }\n}\n')
    with pytest.raises(ValueError, match=r"bad.prototxt: prototxt syntax error: 4:"):
        reader.read_prototxt(path)
    path.write_text('name: "empty"\n')
    with pytest.raises(ValueError, match="no layers"):
        reader.read_prototxt(path)
    with pytest.raises(FileNotFoundError, match="prototxt not found: .*missing.prototxt"):
        reader.read_prototxt(tmp_path / "missing.prototxt")
    with pytest.raises(ValueError, match="cannot read prototxt"):
        reader.read_prototxt(tmp_path)  # a folder


def test_caffe_priors_truncate_sizes_like_caffe():
    from tools.caffe_converter.priors import caffe_priors, pool_output

    param = caffe_pb2.PriorBoxParameter(min_size=[35.84], max_size=[76.8], aspect_ratio=[2], step=8)
    boxes = caffe_priors(param, (1, 1), (512, 512))
    c = 4 / 512
    half = np.array([35, np.sqrt(35 * 76), 35 * np.sqrt(2), 35 / np.sqrt(2)]) / 512 / 2
    np.testing.assert_allclose(boxes[:, 0], c - half)
    assert pool_output(75, 2, 2, 0) == 38 and pool_output(19, 3, 1, 1) == 19
