"""A tiny random HF CLIP folder written once per session (the OpenAI-layout file is in
tests/conftest.py, shared with the model zoo's tests)."""
import json
from pathlib import Path

import pytest
import torch

LETTERS = 'abcdefghijklmnopqrstuvwxyz'


@pytest.fixture(scope='session')
def hf_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HF CLIP folder: random 1-layer towers, 32 px images, a character-level tokenizer."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
    folder = tmp_path_factory.mktemp('hf_clip')
    vocab = {'<|startoftext|>': 0, '<|endoftext|>': 1}
    for char in LETTERS:
        vocab[char] = len(vocab)
        vocab[char + '</w>'] = len(vocab)
    (folder / 'vocab.json').write_text(json.dumps(vocab))
    (folder / 'merges.txt').write_text('#version: 0.2\n')
    CLIPTokenizer(str(folder / 'vocab.json'), str(folder / 'merges.txt')).save_pretrained(folder)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=16),
        projection_dim=16)
    CLIPModel(config).save_pretrained(folder)
    return folder
