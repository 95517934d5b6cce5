"""Activation patching: exact reference, fast batched path, attribution patching."""
