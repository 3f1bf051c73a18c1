"""Keras -> float32 / int8 TFLite bundles, with verification."""
