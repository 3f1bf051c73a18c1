"""VGG16 features of log-mel images, and the (Bi)LSTM that classifies them (``vgg16-lstm``).

Each clip's image is the first window of its first utterance as the device's front end sees
it: the level-normalised log-mel frames (:func:`edge.utterance.normalized_log_mel`, padded
with the floor to a whole window), ``n_mels`` rows (low frequencies at the bottom) by
``window_frames`` columns (40 x 297 for the default front end and 3 s window), dB mapped
linearly to 0..255 and copied to three channels, then VGG's own ``preprocess_input``. VGG16's
frozen convolutional stack (``keras.applications.VGG16(include_top=False, weights=FILE)``,
Keras's own, no extra package) turns it into ``(n_mels // 32, frames // 32, 512)``; the
frequency rows are stacked per column, so the head sees ``frames // 32`` time steps (9 for
3 s) of ``512 * (n_mels // 32)`` features (512). The head: the features standardised with
the training fold's statistics (a Normalization layer, so the saved model needs nothing
else), dropout, a bidirectional LSTM, dropout, softmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import ConfigError
from edge.features import FeatureSpec
from edge.levels import utterance_level
from edge.utterance import floor_log_mel, normalized_log_mel
from train.dataset import Recording


@dataclass(frozen=True)
class VggConfig:
    """The image and the head of ``vgg16-lstm``."""

    db_low: float = -80.0
    """dB relative to the utterance level shown as black (0); lower is clipped."""
    db_high: float = 20.0
    """dB shown as white (255); higher is clipped."""
    lstm_units: int = 64
    """Units of each direction of the bidirectional LSTM."""
    dropout: float = 0.3
    learning_rate: float = 1e-3
    batch_images: int = 8
    """Images per VGG16 call (memory: a 40 x 297 image's first block is 3 MB)."""


def check_weights(path: Path) -> Path:
    """``path`` if it is an HDF5 file (a Keras weights file), else ConfigError saying what to
    give. Cheap: done before any feature is computed."""
    how = ("a Keras VGG16 weights file without the top (e.g."
           " vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5; docs/training.md)")
    if not path.exists():
        raise ConfigError(f"--pretrained {path}: no such file; give {how}")
    if path.is_dir():
        raise ConfigError(f"--pretrained {path}: a directory; --model vgg16-lstm takes {how}")
    import h5py

    if not h5py.is_hdf5(str(path)):
        raise ConfigError(f"--pretrained {path}: not an HDF5 weights file; give {how}")
    return path


def load_vgg16(path: Path, image_shape: tuple[int, int]):
    """VGG16's convolutional stack for ``image_shape`` = (rows, columns) images with the
    weights of ``path`` (:func:`check_weights` first); ConfigError when they do not fit it
    (e.g. a file with the classifier top)."""
    import keras

    check_weights(path)
    if min(image_shape) < 32:
        raise ConfigError(f"vgg16-lstm: a {image_shape[0]} x {image_shape[1]} log-mel image;"
                          " VGG16 needs at least 32 x 32 (more mel bands or a longer window)")
    try:
        model = keras.applications.VGG16(include_top=False, weights=None,
                                         input_shape=(*image_shape, 3))
        model.load_weights(str(path))
    except (ValueError, OSError, KeyError, TypeError) as e:
        text = " ".join(str(e).split())[:200]
        raise ConfigError(f"--pretrained {path}: not VGG16 convolutional weights"
                          f" (include_top=False) Keras can load: {text}") from None
    model.trainable = False
    return model


def image_shape(spec: FeatureSpec) -> tuple[int, int]:
    """(rows, columns) of a clip's image: ``(n_mels, window_frames)``."""
    return spec.frontend.n_mels, spec.window_frames


def log_mel_image(recording: Recording, spec: FeatureSpec, config: VggConfig) -> np.ndarray:
    """The image of a recording's first utterance's first window, ``(n_mels, window_frames)``
    float32 in 0..255, row 0 the highest band."""
    seg = recording.utterances[0]
    w = spec.window_frames
    end = min(seg.end, seg.start + w)
    level = utterance_level(recording.levels[seg.start:seg.end],
                            percentile=spec.level_percentile)
    frames = normalized_log_mel(recording.mel[seg.start:end], spec, level)
    if len(frames) < w:
        frames = np.concatenate([frames, np.broadcast_to(floor_log_mel(spec),
                                                         (w - len(frames), frames.shape[1]))])
    scaled = (frames - config.db_low) / (config.db_high - config.db_low)
    return (np.clip(scaled, 0.0, 1.0) * 255.0).T[::-1].astype(np.float32)


def vgg_features(model, images: np.ndarray, config: VggConfig) -> np.ndarray:
    """``images (n, rows, cols)`` -> time steps ``(n, cols / 32, 512 * rows / 32)`` float32."""
    from keras.applications.vgg16 import preprocess_input

    out = []
    for i in range(0, len(images), config.batch_images):
        rgb = np.repeat(images[i:i + config.batch_images, :, :, None], 3, axis=3)
        f = np.asarray(model.predict_on_batch(preprocess_input(rgb)))   # (b, r, c, 512)
        out.append(f.transpose(0, 2, 1, 3).reshape(len(f), f.shape[2], -1))
    return np.concatenate(out).astype(np.float32)


def build_head(train_features: np.ndarray, n_classes: int, config: VggConfig, seed: int):
    """The (Bi)LSTM classifier on VGG16 time steps ``(steps, dims)``, its Normalization
    adapted to ``train_features (n, steps, dims)``; compiled."""
    import keras

    keras.utils.set_random_seed(seed)
    norm = keras.layers.Normalization(axis=-1)
    norm.adapt(train_features.reshape(-1, train_features.shape[-1]))
    inputs = keras.Input(train_features.shape[1:])
    h = keras.layers.Dropout(config.dropout)(norm(inputs))
    h = keras.layers.Bidirectional(keras.layers.LSTM(config.lstm_units))(h)
    h = keras.layers.Dropout(config.dropout)(h)
    outputs = keras.layers.Dense(n_classes, activation="softmax")(h)
    model = keras.Model(inputs, outputs, name="vgg16_bilstm_head")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
