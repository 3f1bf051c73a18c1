"""Reference hidden states of tiny random wav2vec2 models from transformers' own
implementation, for tests/test_pretrained.py's parity check of train.pretrained.wav2vec2.

Not part of any install: run it in a scratch environment that has transformers 4.x with its
TensorFlow classes (they load the PyTorch-layout safetensors without PyTorch):

    python -m venv /tmp/ref && echo "$PWD/.venv/lib/python3.11/site-packages" \
        > /tmp/ref/lib/python3.11/site-packages/project.pth
    /tmp/ref/bin/pip install 'transformers==4.57.6' && /tmp/ref/bin/pip install --no-deps tf-keras
    /tmp/ref/bin/python tools/wav2vec2_reference.py tests/data/wav2vec2-tiny-reference.npz

The models are train.pretrained.wav2vec2.write_random(config, seed=SEED) of the two encoder
variants (post-norm with group norm, as wav2vec2-base; pre-norm with layer norms, as the
large lv60 models), so the test rebuilds the same weights and needs only the outputs.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from train.pretrained.wav2vec2 import VARIANTS, WEIGHTS_FILE, write_random  # noqa: E402

SEED = 3


def signal(n: int = 16000, seed: int = 0) -> np.ndarray:
    """A second of a voiced-like test signal: two tones and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.3 * np.sin(2 * np.pi * 180 * t) + 0.1 * np.sin(2 * np.pi * 1130 * t)
            + 0.05 * rng.standard_normal(n)).astype(np.float32)


def main(out: str) -> None:
    from safetensors.numpy import load_file
    from transformers import TFWav2Vec2Model, Wav2Vec2Config, __version__
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    x = signal()
    result = {"signal": x, "transformers": np.array(__version__)}
    for name, config in VARIANTS.items():
        with tempfile.TemporaryDirectory() as d:
            write_random(d, config, seed=SEED, prefix="wav2vec2.")
            digest = hashlib.sha256((Path(d) / WEIGHTS_FILE).read_bytes()).hexdigest()
            # from_pretrained(d) does the same, but transformers 4.57 cannot iterate a
            # safetensors >= 0.8 file handle: the state dict is given as arrays instead.
            model = TFWav2Vec2Model(Wav2Vec2Config.from_pretrained(d))
            _, info = load_pytorch_state_dict_in_tf2_model(
                model, load_file(str(Path(d) / WEIGHTS_FILE)), output_loading_info=True)
            assert not info["missing_keys"] and not info["unexpected_keys"], info
            norm = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
            hs = model(norm[None], output_hidden_states=True).hidden_states
        result[f"{name}/hidden_states"] = np.stack([h.numpy()[0] for h in hs])
        result[f"{name}/weights_sha256"] = np.array(digest)
        print(name, result[f"{name}/hidden_states"].shape, digest[:12])
    np.savez_compressed(out, **result)


if __name__ == "__main__":
    main(sys.argv[1])
