"""The pretrained pipelines of ``ser-train``, for users who have the weights:
``wav2vec2-rf`` (wav2vec2 embeddings + a random forest) and ``vgg16-lstm`` (VGG16 features of
log-mel images + a bidirectional LSTM). Host only: neither exports to the device.

Nothing is downloaded: ``--pretrained PATH`` names the weights (docs/training.md). The
dependency route, chosen for TensorFlow 2.21 / Keras 3 and a CPU-only CI that reaches PyPI:

- wav2vec2: a numpy forward pass of Hugging Face's ``Wav2Vec2Model``
  (:mod:`train.pretrained.wav2vec2`) reading the model directory's ``model.safetensors``
  through the ``safetensors`` package, the one dependency of the ``pretrained`` extra
  (about 0.5 MB, a few seconds to install). Rejected: transformers 5 (PyTorch only);
  transformers 4's TensorFlow classes (they need ``tf-keras``, whose wheel requires the full
  ``tensorflow`` distribution on top of this venv's ``tensorflow-cpu``); PyTorch from PyPI
  (its Linux wheels pull GBs of CUDA libraries). Parity with transformers is pinned by a
  stored reference of its own outputs (max difference 3e-6).
- VGG16: ``keras.applications.VGG16``, part of Keras already (``train`` extra).

This module only names the kinds (the CLI reads it for its choices before any heavy import).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PretrainedKind:
    """A ``--model`` kind that needs ``--pretrained``."""

    name: str
    metavar: str
    """What ``--pretrained`` is for it (``DIR`` or ``FILE``)."""
    weights: str
    """Which weights, in a few words."""
    modules: tuple[str, ...]
    """Top-level modules of the ``pretrained`` extra it imports."""


KINDS = {k.name: k for k in (
    PretrainedKind("wav2vec2-rf", "DIR", "a Hugging Face wav2vec2 model directory"
                   " (config.json + model.safetensors, e.g. facebook/wav2vec2-base)",
                   ("safetensors",)),
    PretrainedKind("vgg16-lstm", "FILE", "a Keras VGG16 weights file without the top"
                   " (vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5)", ()),
)}
"""Pretrained kind -> :class:`PretrainedKind`."""
NOT_MEASURED = "not measured here: weights not available"
"""What a comparison of model kinds shows for these kinds where the weights are not at hand
(this machine cannot download them)."""
