"""Bundle integrity: the checksum over the whole file, checked before the interpreter sees a
byte; the flatbuffer's structure check; format-1 bundles refused, and ``ser-export --rehash``
that checks one and adds the checksum. Real shipped bundles, the real interpreter."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest_edge import shipped

from edge import integrity
from edge.bundle import (
    FORMAT_VERSION,
    METADATA_NAME,
    load_bundle,
    metadata_document,
    parse_metadata,
    read_tflite_metadata,
)
from edge.errors import ModelError
from edge.flatbuffer import check_model

SHIPPED = ("cnn-int8", "cnn-float32", "cnn-lstm-int8", "cnn-lstm-float32")


def restamp(data: bytes) -> bytes:
    """``data`` with its checksum recomputed (damage made before the stamp)."""
    start, payload, document = metadata_document(data, "t")
    digest = document["integrity"][integrity.ALGORITHM]
    at = start + integrity.digest_position(payload, digest)
    return integrity.stamp(data[:at] + integrity.PLACEHOLDER.encode() + data[at + 64:], at)


def legacy(data: bytes) -> bytes:
    """A format-1 bundle (no checksum) of the same model, as export wrote them before."""
    from export.embed import embed_metadata

    _, _, document = metadata_document(data, "t")
    document = {k: v for k, v in document.items() if k != "integrity"}
    document["format_version"] = 1
    return embed_metadata(data, METADATA_NAME, json.dumps(document, sort_keys=True).encode())


@pytest.fixture(scope="module")
def default_bytes() -> bytes:
    return shipped().read_bytes()


# ------------------------------------------------------------------------------------------
# The checksum


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_bundles_carry_a_checksum_of_the_whole_file(name):
    path = shipped(name)
    data = path.read_bytes()
    bundle = load_bundle(path)
    _, payload, document = metadata_document(data, str(path))
    assert document["format_version"] == FORMAT_VERSION == 2
    digest = document["integrity"]["sha256"]
    assert bundle.metadata.sha256 == digest and integrity.is_digest(digest)
    at = data.index(f'"{digest}"'.encode()) + 1
    zeroed = data[:at] + b"0" * 64 + data[at + 64:]
    assert hashlib.sha256(zeroed).hexdigest() == digest  # documented: plain sha256, digest as 0s
    check_model(data, str(path))


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


def test_a_change_anywhere_is_a_checksum_mismatch(default_bytes):
    data = default_bytes
    start, payload, document = metadata_document(data, "t")
    digest_at = start + payload.index(document["integrity"]["sha256"].encode())
    label_at = start + payload.index(b'"neutral"') + 2
    space_at = start + payload.index(b", ") + 1
    weights_at = len(data) // 2
    for name, damaged in {
        "a weight": _flip(data, weights_at),
        "a label in the metadata": _flip(data, label_at),
        "a space in the metadata JSON": data[:space_at] + b"\t" + data[space_at + 1:],
        "the checksum itself": data[:digest_at] + (b"1" if data[digest_at:digest_at + 1]
                                                   != b"1" else b"2") + data[digest_at + 1:],
        "one byte appended": data + b"\x00",
        "the last byte": _flip(data, len(data) - 1),
    }.items():
        assert damaged != data
        with pytest.raises(ModelError, match=r"^bad\.tflite: damaged \(checksum mismatch\);"
                                             r" re-install edge-ser .* ser-export$"):
            parse_metadata(damaged, source="bad.tflite")
        print(f"{name}: refused")


def test_export_stamps_the_checksum_without_moving_anything(default_bytes):
    from edge.bundle import stamp_bundle

    start, payload, document = metadata_document(default_bytes, "t")
    digest = document["integrity"]["sha256"]
    placeholder = default_bytes.replace(digest.encode(), integrity.PLACEHOLDER.encode())
    with pytest.raises(ModelError, match="checksum mismatch"):  # an unstamped bundle
        parse_metadata(placeholder)
    assert stamp_bundle(placeholder) == default_bytes


def test_damage_is_refused_before_the_interpreter_sees_the_bytes(default_bytes, tmp_path,
                                                                 monkeypatch):
    import edge.interpreter
    from edge.cli import cli

    def never(*args, **kwargs):
        raise AssertionError("the interpreter was given a damaged model")

    monkeypatch.setattr(edge.interpreter, "find_backend", never)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(_flip(default_bytes, len(default_bytes) // 2))  # a weight
    clip = tmp_path / "clip.wav"
    from edge.audio import write_wav

    write_wav(clip, np.zeros(16000, np.float32), 16000)
    result = CliRunner().invoke(cli, ["predict", "--json", "--model", str(bad), str(clip)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"edge-ser: {bad}: damaged (checksum mismatch); re-install edge-ser if it is a shipped"
        " model (pip install --force-reinstall --no-deps with the wheel file or checkout you"
        " installed from), or export it again with ser-export"]


# ------------------------------------------------------------------------------------------
# Structure: what the checksum cannot see (a file damaged before it was stamped)


def _edited(data: bytes, edit) -> bytes:
    """The bundle with ``edit(model)`` applied through the TFLite schema, then stamped."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    edit(model, model.subgraphs[0])
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return restamp(bytes(builder.Output()))


def _const_input(model, graph) -> int:
    return next(i for op in graph.operators for i in op.inputs
                if i >= 0 and model.buffers[graph.tensors[i].buffer].data is not None
                and len(model.buffers[graph.tensors[i].buffer].data))


def _set_scale(value):
    def edit(model, graph):
        graph.tensors[graph.operators[1].outputs[0]].quantization.scale = np.array(
            [value], np.float32)
    return edit


def _shorten_constant(model, graph):
    buffer = model.buffers[graph.tensors[_const_input(model, graph)].buffer]
    buffer.data = buffer.data[: len(buffer.data) // 2]


def _drop_constant(model, graph):
    model.buffers[graph.tensors[_const_input(model, graph)].buffer].data = None


def _index_past_the_end(model, graph):
    graph.operators[2].inputs[0] = len(graph.tensors) + 5


def _opcode_past_the_end(model, graph):
    graph.operators[3].opcodeIndex = len(model.operatorCodes) + 3


def _huge_shape(model, graph):
    graph.tensors[graph.operators[1].outputs[0]].shape = np.array([1, 10**6, 10**6, 4],
                                                                 np.int32)


@pytest.mark.parametrize("edit, message", [
    (_set_scale(np.nan), "scale that is not finite and positive"),
    (_set_scale(0.0), "scale that is not finite and positive"),
    (_shorten_constant, r"holds \d+ bytes for \d+ elements"),
    (_drop_constant, "has no data and is written by no earlier operator"),
    (_index_past_the_end, "names a tensor past the tensor list"),
    (_opcode_past_the_end, "operator code past the list"),
    (_huge_shape, "elements"),
])
def test_malformed_models_with_a_valid_checksum_are_refused_by_structure(
        default_bytes, edit, message):
    data = _edited(shipped("cnn-int8").read_bytes(), edit)
    with pytest.raises(ModelError, match=rf"^m\.tflite: damaged \(corrupt TFLite flatbuffer:"
                                         rf" .*{message}"):
        parse_metadata(data, source="m.tflite")


def test_the_unedited_repack_passes(default_bytes):
    assert parse_metadata(_edited(default_bytes, lambda m, g: None)).labels


def test_the_interpreter_reports_what_it_refuses_as_one_line():
    """Past the bundle checks, the runtime's own failures at load and at invoke are
    ModelErrors naming the file, not the runtime's exceptions."""
    from edge.interpreter import TfliteModel

    data = _edited(shipped("cnn-int8").read_bytes(), _drop_constant)
    model = TfliteModel(data, source="m.tflite")  # the constant is only missed at invoke
    with pytest.raises(ModelError, match=r"^m\.tflite: the TFLite interpreter failed to run"
                                         r" the model \(.*lacks data"):
        model.invoke(np.zeros(model.input_shape, model.input_dtype))
    good = TfliteModel(shipped("cnn-int8").read_bytes(), source="g.tflite")
    with pytest.raises(ModelError, match=r"^g\.tflite: the TFLite interpreter failed to run"):
        good.invoke(np.zeros(good.input_shape, np.float32))  # wrong input type


# ------------------------------------------------------------------------------------------
# Format-1 bundles and ser-export --rehash


def _ser_export(*args: str):
    from export.cli import main

    return CliRunner().invoke(main, list(args))


@pytest.fixture()
def old_bundle(tmp_path, default_bytes) -> Path:
    """A format-1 bundle and the export report that recorded its SHA-256."""
    old = tmp_path / "old.tflite"
    old.write_bytes(legacy(default_bytes))
    report = json.loads(shipped().with_name(f"{shipped().stem}.export.json").read_text())
    report.update(sha256=hashlib.sha256(old.read_bytes()).hexdigest(),
                  size_bytes=old.stat().st_size)
    (tmp_path / "old.export.json").write_text(json.dumps(report))
    return old


def test_format_1_bundles_are_refused_naming_the_rehash(old_bundle):
    from edge.cli import cli

    result = CliRunner().invoke(cli, ["info", str(old_bundle)])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"edge-ser: {old_bundle}: a bundle of format 1")
    assert f"ser-export --rehash {old_bundle} --out NEW.tflite" in line


def test_rehash_checks_the_old_bundle_and_adds_the_checksum(old_bundle, tmp_path,
                                                            default_bytes):
    new = tmp_path / "new.tflite"
    result = _ser_export("--rehash", str(old_bundle), "--out", str(new), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["reference"] == str(tmp_path / "old.export.json")
    bundle = load_bundle(new)
    assert bundle.metadata.sha256 == summary["checksum"]
    old_meta = json.loads(read_tflite_metadata(old_bundle.read_bytes())[METADATA_NAME])
    new_meta = json.loads(read_tflite_metadata(new.read_bytes())[METADATA_NAME])
    assert {k: v for k, v in new_meta.items() if k not in ("integrity", "format_version")} \
        == {k: v for k, v in old_meta.items() if k != "format_version"}
    report = json.loads((tmp_path / "new.export.json").read_text())
    assert report["sha256"] == hashlib.sha256(new.read_bytes()).hexdigest()
    assert report["rehash"]["old_sha256"] == hashlib.sha256(old_bundle.read_bytes()).hexdigest()
    # the same model: identical outputs (the rehash compared them in a child process too)
    from edge.interpreter import TfliteModel

    a, b = TfliteModel(default_bytes), TfliteModel(new.read_bytes())
    x = np.random.default_rng(0).integers(-128, 128, a.input_shape).astype(np.int8)
    np.testing.assert_array_equal(a.invoke(x), b.invoke(x))
    again = _ser_export("--rehash", str(new), "--out", str(tmp_path / "x.tflite"))
    assert again.exit_code == 2 and "already carries a checksum" in again.stderr


@pytest.mark.parametrize("case", ["damaged", "no reference", "wrong reference"])
def test_rehash_refuses_what_it_cannot_vouch_for(old_bundle, tmp_path, case):
    args = ["--rehash", str(old_bundle), "--out", str(tmp_path / "new.tflite")]
    if case == "damaged":
        old_bundle.write_bytes(_flip(old_bundle.read_bytes(), len(old_bundle.read_bytes()) // 2))
        fragment = "damaged (its SHA-256"
    elif case == "no reference":
        (tmp_path / "old.export.json").unlink()
        fragment = "no reference to check it against"
    else:
        args += ["--expect-sha256", "ab" * 32]
        fragment = "recorded in --expect-sha256"
    result = _ser_export(*args)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("ser-export: ") and fragment in line
    assert not (tmp_path / "new.tflite").exists()
    if case == "no reference":
        forced = _ser_export(*args, "--unchecked")
        assert forced.exit_code == 0, forced.output
        load_bundle(tmp_path / "new.tflite")


def test_rehash_needs_no_tensorflow(old_bundle, tmp_path):
    code = f"""
import sys
from click.testing import CliRunner
from export.cli import main
r = CliRunner().invoke(main, ["--rehash", {str(old_bundle)!r},
                              "--out", {str(tmp_path / 'n.tflite')!r}])
assert r.exit_code == 0, r.output
print(sorted(m for m in ("tensorflow", "keras", "librosa") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
