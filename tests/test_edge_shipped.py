"""--model lookup: paths, shipped names, the default, and clear errors."""

from __future__ import annotations

import pytest

from edge.errors import ModelError
from edge.shipped import default_model, resolve_model, shipped_models


@pytest.fixture
def models(tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    for name in ("cnn-int8", "cnn-float32", "cnn-lstm-int8"):
        (d / f"{name}.tflite").write_bytes(b"x")
    (d / "DEFAULT").write_text("cnn-lstm-int8.tflite\n")
    return d


def test_names_resolve_to_shipped_files(models, tmp_path, monkeypatch):
    monkeypatch.delenv("EDGE_SER_MODEL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_model("cnn", models) == models / "cnn-int8.tflite"
    assert resolve_model("cnn-lstm", models) == models / "cnn-lstm-int8.tflite"
    assert resolve_model("cnn-float32", models) == models / "cnn-float32.tflite"
    assert resolve_model("cnn-float32.tflite", models) == models / "cnn-float32.tflite"
    assert resolve_model(None, models) == default_model(models) == models / "cnn-lstm-int8.tflite"
    assert [p.stem for p in shipped_models(models)] == ["cnn-float32", "cnn-int8",
                                                         "cnn-lstm-int8"]


def test_paths_win_and_the_environment_names_the_default(models, tmp_path, monkeypatch):
    mine = tmp_path / "mine.tflite"
    mine.write_bytes(b"x")
    assert resolve_model(str(mine), models) == mine
    assert str(resolve_model("elsewhere/x.tflite", models)) == "elsewhere/x.tflite"
    monkeypatch.setenv("EDGE_SER_MODEL", "cnn-float32")
    assert resolve_model(None, models) == models / "cnn-float32.tflite"


def test_unknown_names_and_a_broken_install_are_clear(models, tmp_path, monkeypatch):
    monkeypatch.delenv("EDGE_SER_MODEL", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match=r"shipped: cnn-float32, cnn-int8, cnn-lstm-int8"):
        resolve_model("gru", models)
    (models / "DEFAULT").write_text("gone.tflite")
    with pytest.raises(ModelError, match="gone.tflite"):
        resolve_model(None, models)
    (models / "DEFAULT").unlink()
    with pytest.raises(ModelError, match="DEFAULT is missing"):
        default_model(models)
