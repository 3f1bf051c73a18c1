"""wav2vec 2.0 hidden states in numpy, from a Hugging Face model directory.

The forward pass of Hugging Face's ``Wav2Vec2Model`` (inference: no masking, no dropout), for
both encoder variants (``do_stable_layer_norm`` false: wav2vec2-base, post-norm; true: the
large "lv60" models, pre-norm) and both feature-encoder norms (``feat_extract_norm`` "group"
or "layer"). Weights come from the directory's ``model.safetensors`` (read with the
``safetensors`` package, part of the ``pretrained`` extra): the file ``save_pretrained``
writes, with or without the ``wav2vec2.`` prefix of the pre-training and CTC checkpoints,
with weight norm stored either way (``weight_g``/``weight_v`` or ``parametrizations``).

Why numpy and not transformers: transformers 5 runs on PyTorch only; transformers 4's
TensorFlow classes need ``tf-keras``, whose wheel requires the full ``tensorflow``
distribution (it would be installed over this venv's ``tensorflow-cpu``: hundreds of MB and
two packages owning one module), and PyTorch from PyPI brings GBs of CUDA wheels. The forward
pass is ~150 lines of matrix products; its parity with transformers' own implementation is
pinned by a stored reference (``tests/data/wav2vec2-tiny-reference.npz``, made by
``tools/wav2vec2_reference.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.special import erf

from edge.errors import ConfigError

WEIGHTS_FILE = "model.safetensors"
PREFIX = "wav2vec2."
"""Prefix of the encoder's weights in pre-training/CTC checkpoints (absent in a bare
``Wav2Vec2Model``'s)."""


@dataclass(frozen=True)
class Wav2Vec2Config:
    """The fields of a Hugging Face ``config.json`` this forward pass uses (same names)."""

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_bias: bool = False
    feat_extract_norm: str = "group"
    feat_extract_activation: str = "gelu"
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    do_stable_layer_norm: bool = False
    layer_norm_eps: float = 1e-5

    @classmethod
    def from_dict(cls, d: Mapping) -> Wav2Vec2Config:
        names = cls.__dataclass_fields__
        kept = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        return cls(**kept)

    def to_dict(self) -> dict:
        return {"model_type": "wav2vec2", "architectures": ["Wav2Vec2Model"],
                **{k: (list(v) if isinstance(v, tuple) else v)
                   for k, v in self.__dict__.items()}}

    @property
    def receptive_samples(self) -> int:
        """Fewest input samples that give one output frame (400 for wav2vec2-base)."""
        n = 1
        for k, s in zip(reversed(self.conv_kernel), reversed(self.conv_stride)):
            n = (n - 1) * s + k
        return n


@dataclass(frozen=True)
class Wav2Vec2:
    """A loaded model: its config, its weights by (prefix-free) name, and whether the input is
    normalised to zero mean and unit variance per clip (``do_normalize`` of the directory's
    ``preprocessor_config.json``; true when absent, as for wav2vec2-base)."""

    config: Wav2Vec2Config
    weights: Mapping[str, np.ndarray] = field(repr=False)
    normalize: bool = True
    sample_rate: int = 16000

    @property
    def n_layers(self) -> int:
        """Hidden states returned by :func:`hidden_states`: the encoder input and each layer."""
        return self.config.num_hidden_layers + 1


def check_directory(path: Path) -> Path:
    """``path`` if it looks like a usable model directory (config.json of a wav2vec2 model and
    model.safetensors), else ConfigError saying what is missing and how to get it. Reads only
    the config: cheap, done before any feature is computed."""
    how = ("a Hugging Face wav2vec2 model directory (config.json + model.safetensors, e.g."
           " facebook/wav2vec2-base saved with save_pretrained; docs/training.md)")
    if not path.exists():
        raise ConfigError(f"--pretrained {path}: no such directory; give {how}")
    if not path.is_dir():
        raise ConfigError(f"--pretrained {path}: not a directory; --model wav2vec2-rf takes {how}")
    cfg = path / "config.json"
    if not cfg.is_file():
        raise ConfigError(f"--pretrained {path}: no config.json; give {how}")
    try:
        d = json.loads(cfg.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"--pretrained {path}: config.json unreadable ({e})") from None
    if not isinstance(d, dict) or d.get("model_type") != "wav2vec2":
        kind = d.get("model_type") if isinstance(d, dict) else None
        raise ConfigError(f"--pretrained {path}: config.json is not a wav2vec2 model"
                          f" (model_type {kind!r}); give {how}")
    if not (path / WEIGHTS_FILE).is_file():
        other = [n for n in ("pytorch_model.bin", "tf_model.h5") if (path / n).is_file()]
        hint = (f" (it has {', '.join(other)}: on a machine with PyTorch, load it with"
                " transformers and save_pretrained(DIR, safe_serialization=True))"
                if other else "")
        raise ConfigError(f"--pretrained {path}: no {WEIGHTS_FILE}{hint}")
    return path


_WEIGHT_NORM = {"parametrizations.weight.original0": "weight_g",
                "parametrizations.weight.original1": "weight_v"}
"""Weight norm as newer PyTorch saves it -> the older names used here."""


def _canonical(name: str) -> str:
    """A checkpoint's weight name as :func:`weight_shapes` spells it: without the
    ``wav2vec2.`` prefix, weight norm as ``weight_g``/``weight_v``."""
    name = name[len(PREFIX):] if name.startswith(PREFIX) else name
    for new, old in _WEIGHT_NORM.items():
        if name.endswith(new):
            return name[:-len(new)] + old
    return name


def load_model(path: str | Path) -> Wav2Vec2:
    """The model of a Hugging Face directory (:func:`check_directory`, then the weights)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = check_directory(Path(path))
    config = Wav2Vec2Config.from_dict(json.loads((path / "config.json").read_text()))
    try:
        raw = load_file(str(path / WEIGHTS_FILE))
    except (SafetensorError, OSError, ValueError) as e:
        raise ConfigError(f"--pretrained {path}: {WEIGHTS_FILE} unreadable ({e})") from None
    weights = {_canonical(k): v.astype(np.float32) for k, v in raw.items()}
    normalize = True
    pre = path / "preprocessor_config.json"
    if pre.is_file():
        p = json.loads(pre.read_text())
        normalize = bool(p.get("do_normalize", True))
        if int(p.get("sampling_rate", 16000)) != 16000:
            raise ConfigError(f"--pretrained {path}: sampling_rate {p['sampling_rate']};"
                              " wav2vec2-rf feeds 16 kHz audio")
    model = Wav2Vec2(config, weights, normalize)
    missing = sorted(set(weight_shapes(config)) - set(weights))
    if missing:
        raise ConfigError(f"--pretrained {path}: {WEIGHTS_FILE} lacks {len(missing)} of the"
                          f" encoder's weights (e.g. {missing[0]}): not a wav2vec2 checkpoint"
                          " of this config")
    return model


# --------------------------------------------------------------------------------------
# The forward pass
# --------------------------------------------------------------------------------------


def _act(name: str, x: np.ndarray) -> np.ndarray:
    if name == "gelu":
        return (0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))).astype(np.float32)
    if name == "relu":
        return np.maximum(x, 0)
    raise ConfigError(f"wav2vec2 activation {name!r} not supported (gelu, relu)")


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float, axis: int = -1
                ) -> np.ndarray:
    mean = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def _conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int,
            groups: int = 1) -> np.ndarray:
    """``x (T, C_in)``, ``w (C_out, C_in / groups, K)`` (PyTorch layout) -> ``(T', C_out)``,
    no padding."""
    c_out, c_in_g, k = w.shape
    t_out = (len(x) - k) // stride + 1
    idx = np.arange(t_out)[:, None] * stride + np.arange(k)[None, :]
    outs = []
    per_out = c_out // groups
    for g in range(groups):
        xg = x[:, g * c_in_g:(g + 1) * c_in_g][idx]          # (T', K, C_in_g)
        wg = w[g * per_out:(g + 1) * per_out]                   # (out_g, C_in_g, K)
        outs.append(xg.reshape(t_out, -1) @ wg.transpose(2, 1, 0).reshape(-1, per_out))
    y = np.concatenate(outs, axis=1) if groups > 1 else outs[0]
    return y + b if b is not None else y


def _weight_norm(w: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """The positional convolution's weight from weight norm over dim 2 (g ``(1, 1, K)``)."""
    g, v = w[f"{name}.weight_g"], w[f"{name}.weight_v"]
    norm = np.sqrt((v.astype(np.float64) ** 2).sum(axis=(0, 1), keepdims=True))
    return (g * v / norm).astype(np.float32)


def _feature_encoder(m: Wav2Vec2, x: np.ndarray) -> np.ndarray:
    """Waveform ``(n,)`` -> conv features ``(T, conv_dim[-1])``."""
    c, w = m.config, m.weights
    h = x[:, None]
    for i, (k, s) in enumerate(zip(c.conv_kernel, c.conv_stride)):
        p = f"feature_extractor.conv_layers.{i}"
        conv = w[f"{p}.conv.weight"]
        if conv.shape[2] != k:
            raise ConfigError(f"wav2vec2 weights: conv layer {i} kernel {conv.shape[2]} but"
                              f" config says {k}")
        h = _conv1d(h, conv, w.get(f"{p}.conv.bias"), s)
        if c.feat_extract_norm == "layer":
            h = _layer_norm(h, w[f"{p}.layer_norm.weight"], w[f"{p}.layer_norm.bias"], 1e-5)
        elif i == 0:  # GroupNorm with one group per channel: each channel over time
            h = _layer_norm(h, w[f"{p}.layer_norm.weight"], w[f"{p}.layer_norm.bias"], 1e-5,
                            axis=0)
        h = _act(c.feat_extract_activation, h)
    return h


def _attention(m: Wav2Vec2, p: str, h: np.ndarray) -> np.ndarray:
    c, w = m.config, m.weights
    n_heads = c.num_attention_heads
    d = c.hidden_size // n_heads

    def proj(name: str) -> np.ndarray:
        y = h @ w[f"{p}.{name}.weight"].T + w[f"{p}.{name}.bias"]
        return y.reshape(len(h), n_heads, d).transpose(1, 0, 2)     # (heads, T, d)

    q = proj("q_proj") * np.float32(d ** -0.5)
    k, v = proj("k_proj"), proj("v_proj")
    logits = q @ k.transpose(0, 2, 1)
    logits -= logits.max(axis=-1, keepdims=True)
    att = np.exp(logits)
    att /= att.sum(axis=-1, keepdims=True)
    out = (att @ v).transpose(1, 0, 2).reshape(len(h), c.hidden_size)
    return out @ w[f"{p}.out_proj.weight"].T + w[f"{p}.out_proj.bias"]


def _feed_forward(m: Wav2Vec2, p: str, h: np.ndarray) -> np.ndarray:
    w = m.weights
    y = _act(m.config.hidden_act,
             h @ w[f"{p}.intermediate_dense.weight"].T + w[f"{p}.intermediate_dense.bias"])
    return y @ w[f"{p}.output_dense.weight"].T + w[f"{p}.output_dense.bias"]


def hidden_states(model: Wav2Vec2, signal: np.ndarray) -> np.ndarray:
    """All hidden states of one clip, as ``output_hidden_states=True`` returns them.

    Parameters
    ----------
    signal : np.ndarray [shape=(n,)], 16 kHz mono, ``n >= config.receptive_samples``
        (shorter clips are zero-padded to that).

    Returns
    -------
    np.ndarray [shape=(num_hidden_layers + 1, T, hidden_size)], float32: the encoder's input
    (after the positional convolution; for the post-norm base model, after its layer norm)
    and each transformer layer's output; ``T`` about 50 per second.
    """
    c, w = model.config, model.weights
    x = np.asarray(signal, np.float32)
    if len(x) < c.receptive_samples:
        x = np.pad(x, (0, c.receptive_samples - len(x)))
    if model.normalize:
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    h = _feature_encoder(model, x)
    h = _layer_norm(h, w["feature_projection.layer_norm.weight"],
                    w["feature_projection.layer_norm.bias"], c.layer_norm_eps)
    h = h @ w["feature_projection.projection.weight"].T + w["feature_projection.projection.bias"]
    pos_w = _weight_norm(w, "encoder.pos_conv_embed.conv")
    k = c.num_conv_pos_embeddings
    padded = np.pad(h, ((k // 2, k // 2), (0, 0)))
    pos = _conv1d(padded, pos_w, w["encoder.pos_conv_embed.conv.bias"], 1,
                  groups=c.num_conv_pos_embedding_groups)
    if k % 2 == 0:
        pos = pos[:-1]
    h = h + _act(c.feat_extract_activation, pos)
    eps = c.layer_norm_eps
    out = []
    if not c.do_stable_layer_norm:
        h = _layer_norm(h, w["encoder.layer_norm.weight"], w["encoder.layer_norm.bias"], eps)
    for i in range(c.num_hidden_layers):
        out.append(h)
        p = f"encoder.layers.{i}"
        ln = (w[f"{p}.layer_norm.weight"], w[f"{p}.layer_norm.bias"])
        fln = (w[f"{p}.final_layer_norm.weight"], w[f"{p}.final_layer_norm.bias"])
        if c.do_stable_layer_norm:
            h = h + _attention(model, f"{p}.attention", _layer_norm(h, *ln, eps))
            h = h + _feed_forward(model, f"{p}.feed_forward", _layer_norm(h, *fln, eps))
        else:
            h = _layer_norm(h + _attention(model, f"{p}.attention", h), *ln, eps)
            h = _layer_norm(h + _feed_forward(model, f"{p}.feed_forward", h), *fln, eps)
    if c.do_stable_layer_norm:
        h = _layer_norm(h, w["encoder.layer_norm.weight"], w["encoder.layer_norm.bias"], eps)
    out.append(h)
    return np.stack(out).astype(np.float32)


def pooled_layers(model: Wav2Vec2, signal: np.ndarray) -> np.ndarray:
    """Each hidden state's mean over time: ``(num_hidden_layers + 1, hidden_size)`` float32."""
    return hidden_states(model, signal).mean(axis=1)


# --------------------------------------------------------------------------------------
# A randomly initialised model in the same layout (tests; no download)
# --------------------------------------------------------------------------------------


def weight_shapes(c: Wav2Vec2Config) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every weight :func:`hidden_states` reads (PyTorch layout)."""
    s: dict[str, tuple[int, ...]] = {}
    c_in = 1
    for i, (d, k) in enumerate(zip(c.conv_dim, c.conv_kernel)):
        p = f"feature_extractor.conv_layers.{i}"
        s[f"{p}.conv.weight"] = (d, c_in, k)
        if c.conv_bias:
            s[f"{p}.conv.bias"] = (d,)
        if c.feat_extract_norm == "layer" or i == 0:
            s[f"{p}.layer_norm.weight"] = s[f"{p}.layer_norm.bias"] = (d,)
        c_in = d
    hs, inter = c.hidden_size, c.intermediate_size
    s["feature_projection.layer_norm.weight"] = s["feature_projection.layer_norm.bias"] = (c_in,)
    s["feature_projection.projection.weight"] = (hs, c_in)
    s["feature_projection.projection.bias"] = (hs,)
    k, g = c.num_conv_pos_embeddings, c.num_conv_pos_embedding_groups
    s["encoder.pos_conv_embed.conv.weight_g"] = (1, 1, k)
    s["encoder.pos_conv_embed.conv.weight_v"] = (hs, hs // g, k)
    s["encoder.pos_conv_embed.conv.bias"] = (hs,)
    s["encoder.layer_norm.weight"] = s["encoder.layer_norm.bias"] = (hs,)
    for i in range(c.num_hidden_layers):
        p = f"encoder.layers.{i}"
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            s[f"{p}.attention.{name}.weight"] = (hs, hs)
            s[f"{p}.attention.{name}.bias"] = (hs,)
        s[f"{p}.feed_forward.intermediate_dense.weight"] = (inter, hs)
        s[f"{p}.feed_forward.intermediate_dense.bias"] = (inter,)
        s[f"{p}.feed_forward.output_dense.weight"] = (hs, inter)
        s[f"{p}.feed_forward.output_dense.bias"] = (hs,)
        for name in ("layer_norm", "final_layer_norm"):
            s[f"{p}.{name}.weight"] = s[f"{p}.{name}.bias"] = (hs,)
    return s


def write_random(path: str | Path, config: Wav2Vec2Config, *, seed: int = 0,
                 prefix: str = "") -> Path:
    """A randomly initialised model directory in Hugging Face's layout (config.json,
    model.safetensors with weight norm as ``weight_g``/``weight_v``): for tests, no download.
    Layer norms start near 1/0 and matrices at ``1/sqrt(fan_in)``, so activations stay O(1)."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, shape in weight_shapes(config).items():
        if name.endswith("norm.weight"):
            t = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith(".bias"):
            t = 0.1 * rng.standard_normal(shape)
        elif name.endswith("weight_g"):
            t = 1.0 + 0.1 * rng.random(shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            t = rng.standard_normal(shape) / np.sqrt(fan_in)
        tensors[prefix + name] = np.ascontiguousarray(t, dtype=np.float32)
    # Saved by real checkpoints, used only to mask frames in training (never read here).
    tensors[prefix + "masked_spec_embed"] = rng.random(config.hidden_size, dtype=np.float32)
    save_file(tensors, str(path / WEIGHTS_FILE), metadata={"format": "pt"})
    (path / "config.json").write_text(json.dumps(config.to_dict(), indent=1))
    return path


TINY = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                      num_conv_pos_embedding_groups=4)
"""A tiny config with wav2vec2-base's strides (50 frames per second): tests."""
VARIANTS = {
    "post-norm": TINY,
    "pre-norm": replace(TINY, feat_extract_norm="layer", do_stable_layer_norm=True,
                        conv_bias=True),
}
"""The two encoder variants (wav2vec2-base's; the large lv60 models'), tiny: tests."""
