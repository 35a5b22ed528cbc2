"""Fixtures of the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A tiny random Llama with the bundled tokenizer: the real training stack at unit-test speed."""
    return make_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def wide_base(tmp_path_factory) -> Path:
    """The tiny Llama with larger initial weights: with std 0.02 embeddings its logits can differ by
    about 0.9 at most (probabilities of two tokens stop near 70/30), too little to tell a learnt
    70/30 target from a one-hot one."""
    return make_tiny(tmp_path_factory.mktemp("wide"), initializer_range=0.3)


def make_tiny(folder: Path, initializer_range: float = 0.02) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from simulation.training import default_base

    tok = AutoTokenizer.from_pretrained(default_base())
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True,
                      initializer_range=initializer_range)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
