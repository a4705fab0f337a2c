"""CLIP encoders: local loading, frozen weights kept out of checkpoints, clear errors."""
import pickle
from typing import Tuple

import pytest
import torch

from mmrisfusion.models.clip import HFCLIPEncoder, OpenCLIPEncoder, load_openai_clip_state_dict
from mmrisfusion.registry import MODELS
from mmrisfusion.utils.checkpoint import load_torchscript_weights


def _check_encoder(encoder, size: int) -> None:
    assert encoder.image_size == size
    text = encoder.encode_text(['an infrared image', 'a visible gray image'])
    assert text.shape[0] == 2 and not text.requires_grad
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(2))
    assert not torch.allclose(text[0], text[1])

    gray = torch.rand(2, 1, 40, 50, requires_grad=True)
    emb = encoder.encode_image(gray)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))
    # Gray is replicated to three channels before CLIP.
    torch.testing.assert_close(emb, encoder.encode_image(gray.detach().expand(-1, 3, -1, -1)))
    emb.sum().backward()
    assert gray.grad is not None and gray.grad.abs().sum() > 0

    # Frozen and out of checkpoints and optimisers, but moved with the module.
    assert list(encoder.parameters()) == []
    assert encoder.state_dict() == {}
    assert all(not p.requires_grad for p in encoder.net.parameters())
    encoder.train()
    assert not encoder.net.training
    encoder.to(torch.float64)
    assert next(encoder.net.parameters()).dtype == torch.float64
    assert encoder.encode_image(gray.detach().double()).dtype == torch.float64
    encoder.to(torch.float32)


def test_hf_clip_encoder(hf_clip_dir):
    encoder = MODELS.build(dict(type='HFCLIPEncoder', pretrained=str(hf_clip_dir)))
    _check_encoder(encoder, 32)


def test_openclip_encoder(openai_clip_file):
    encoder = MODELS.build(dict(type='OpenCLIPEncoder', checkpoint=str(openai_clip_file)))
    _check_encoder(encoder, 32)
    assert encoder.context_length == 77
    # Same numbers as open_clip's own model with the same weights.
    from open_clip.model import build_model_from_openai_state_dict
    ref = build_model_from_openai_state_dict(
        torch.load(openai_clip_file, weights_only=True), cast_dtype=None).float()
    image = torch.rand(1, 1, 32, 32)
    pixels = (image.expand(-1, 3, -1, -1) - encoder.mean) / encoder.std
    torch.testing.assert_close(encoder.encode_image(image),
                               ref.encode_image(pixels, normalize=True))


def test_openclip_torchscript_archive(openai_clip_file, tmp_path, monkeypatch):
    """OpenAI's released file is a TorchScript archive: its weights are read too, without
    torch.jit.load (which compiles and runs the archive's code)."""
    def refuse(*args, **kwargs):
        raise AssertionError('torch.jit.load runs the archive\'s code')

    state = torch.load(openai_clip_file, weights_only=True)

    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for name, value in state.items():
                *parents, leaf = name.split('.')
                module = self
                for part in parents:
                    if not hasattr(module, part):
                        module.add_module(part, torch.nn.Module())
                    module = getattr(module, part)
                module.register_buffer(leaf, value.clone())

        def forward(self, x):
            return x

    archive = tmp_path / 'ViT-B-32.pt'
    torch.jit.script(Holder()).save(str(archive))
    monkeypatch.setattr(torch.jit, 'load', refuse)
    loaded = load_openai_clip_state_dict(str(archive))
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        torch.testing.assert_close(loaded[key], value)


class RestoresItself(torch.nn.Module):
    """A module whose TorchScript __setstate__, run by torch.jit.load, changes its weight."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(3))

    def forward(self, x):
        return x * self.weight

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, bool]:
        return self.weight, self.training

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, bool]) -> None:
        self.weight = state[0] * 42
        self.training = state[1]


def test_torchscript_code_never_runs(tmp_path):
    archive = tmp_path / 'ViT-B-32.pt'
    torch.jit.script(RestoresItself()).save(str(archive))
    ran = torch.jit.load(str(archive)).state_dict()['weight']
    assert (ran == 42).all()  # what loading it with torch.jit.load does: its code runs
    with pytest.raises(pickle.UnpicklingError, match=r'ViT-B-32.pt: RestoresItself .* '
                       r'restores itself with its own code \(__setstate__\)'):
        load_torchscript_weights(str(archive))
    with pytest.raises(pickle.UnpicklingError, match='__setstate__'):
        OpenCLIPEncoder(checkpoint=str(archive))


def test_missing_clip_files_give_clear_errors(tmp_path, hf_clip_dir):
    with pytest.raises(ValueError, match='ViT-B-32.pt'):
        OpenCLIPEncoder()
    missing = tmp_path / 'nowhere' / 'ViT-B-32.pt'
    with pytest.raises(FileNotFoundError, match=r'nowhere.*ViT-B-32\.pt.*open_clip'):
        OpenCLIPEncoder(checkpoint=str(missing))
    bad = tmp_path / 'bad.pt'
    torch.save({'weight': torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match=r'bad\.pt.*visual\.conv1\.weight'):
        OpenCLIPEncoder(checkpoint=str(bad))

    with pytest.raises(ValueError, match='pretrained'):
        HFCLIPEncoder()
    with pytest.raises(FileNotFoundError, match='nowhere.*clip-vit-base-patch32'):
        HFCLIPEncoder(pretrained=str(tmp_path / 'nowhere'))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match='config.json'):
        HFCLIPEncoder(pretrained=str(empty))
    (empty / 'config.json').write_text((hf_clip_dir / 'config.json').read_text())
    with pytest.raises(FileNotFoundError, match='no CLIP weights.*model.safetensors'):
        HFCLIPEncoder(pretrained=str(empty))


def test_bad_images_are_rejected(hf_clip_dir):
    encoder = HFCLIPEncoder(pretrained=str(hf_clip_dir))
    with pytest.raises(ValueError, match=r'\(B, 1, H, W\).*\(2, 2, 8, 8\)'):
        encoder.encode_image(torch.rand(2, 2, 8, 8))
    with pytest.raises(TypeError, match='sequence of str'):
        encoder.encode_text('a single string')
