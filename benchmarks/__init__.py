"""Latency, size and accuracy of int8 vs float models; writes reports."""
