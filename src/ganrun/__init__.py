"""ganrun: config-driven GAN training for TensorFlow 2 / Keras 3."""

import os

# TensorFlow runs its CPU convolutions and matmuls through oneDNN only on CPUs with AVX-512
# VNNI/BF16 or AMX unless asked; on an AVX2-only CPU (AMD EPYC, 2 cores) asking made the
# default experiment's float32 step 1.63x faster (0.95 -> 1.56 steps/s, docs/speed.md). It is
# read when TensorFlow is first imported, so it applies to processes that import ganrun first
# (the `ganrun` command, the tests, the scripts); TF_ENABLE_ONEDNN_OPTS=0 still turns it off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
