"""Shared fixtures. TensorFlow is configured exactly as the command line configures it, before any import."""

from __future__ import annotations

from tfx_compat import prepare_tensorflow

prepare_tensorflow()
