"""Plain-PyTorch reward-model training and scoring. Imports nothing from Django.

config    TrainConfig: every hyperparameter with its default and the reason for it
data      rankings -> token sequences -> length-bucketed batches; pairs implied by tie groups
model     a Hugging Face encoder or decoder folder plus a scalar head
loss      Bradley-Terry over all pairs of a ranking, averaged per ranking (InstructGPT)
train     the training loop
scoring   scores for (conversation, answer) pairs, gradient-free
artifacts safetensors + JSON + tokenizer in one folder; never pickles
"""

import os

# oneDNN (bf16 matmuls on CPU) caches compiled kernels per input shape, 1024 shapes by default.
# Dynamic padding makes many shapes, so the caches would grow by megabytes a step; 64 entries
# hold every shape of one step. Read at first use, so set before any model runs; an explicit
# setting in the environment wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
os.environ.setdefault("LRU_CACHE_CAPACITY", "64")
