import importlib.util
import json
import runpy
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from mmrisfusion.models.utils.ckpt_convert import (
    BERT_BASE_CONFIG,
    convert_hf_bert,
    convert_lavt_official,
    convert_official_fuser,
    convert_swin_official,
    infer_lavt_arch,
    official_fuser_config,
    resize_relative_position_table,
    swin_relative_position_index,
)
from mmrisfusion.registry import MODELS
from mmrisfusion.utils.checkpoint import load_weights_only

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(
        name, REPO_ROOT / 'tools' / 'model_converters' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def full_layout(data_dir):
    """The full-size official layout as tensors on the 'meta' device (no memory)."""
    keys = json.loads((data_dir / 'risfusion' / 'keys_swin-b.json').read_text())
    return {part: OrderedDict((k, torch.empty(shape, device='meta'))
                              for k, shape in layout.items())
            for part, layout in keys.items()}


@pytest.fixture(scope='module')
def official_tiny(derived_reference):
    """A tiny checkpoint in the official layout."""
    return derived_reference.checkpoint


def _coverage(converted, ours, official_count):
    """Every official key gives one of ours with the same numel, and every one of ours comes."""
    assert len(converted) == official_count  # no two official keys collapse into one
    assert set(converted) == set(ours), (sorted(set(converted) - set(ours))[:5],
                                         sorted(set(ours) - set(converted))[:5])
    bad = [k for k in ours if converted[k].numel() != ours[k].numel()]
    assert bad == []


def test_full_size_lavt_key_coverage(full_layout):
    """The Swin-B LAVT layout maps one-to-one onto our backbone and head, both ways."""
    model = full_layout['model']
    arch = infer_lavt_arch(model)
    assert arch['backbone']['embed_dims'] == 128
    assert arch['backbone']['depths'] == [2, 2, 18, 2]
    assert arch['backbone']['num_heads'] == [4, 8, 16, 32]
    assert arch['backbone']['window_size'] == 12
    assert arch['decode_head']['channels'] == 512
    with torch.device('meta'):
        ours = {f'backbone.{k}': v for k, v in MODELS.build(arch['backbone']).state_dict().items()}
        ours.update({f'decode_head.{k}': v
                     for k, v in MODELS.build(arch['decode_head']).state_dict().items()})
    _coverage(convert_lavt_official(model), ours, len(model))
    params = sum(v.numel() for k, v in ours.items()
                 if 'relative_position_index' not in k and 'running_' not in k
                 and 'num_batches_tracked' not in k)
    # The published segmentation network has 118.8M (docs/risfusion.md#model-size).
    assert abs(params / 1e6 - 118.8) < 0.1


def test_full_size_key_coverage_of_whole_model(full_layout):
    """model + prefusion_model + bert-base map onto a full-size RISFusion, both ways."""
    arch = infer_lavt_arch(full_layout['model'])
    prefusion = OrderedDict(full_layout['prefusion_model'])
    for key in ('mean_vis', 'std_vis', 'mean_ir', 'std_ir'):  # values, not only shapes
        prefusion[key] = torch.full(prefusion[key].shape, 0.5)
    fuser = official_fuser_config(prefusion)
    assert fuser['base_channels'] == 32 and tuple(fuser['inject_levels']) == (3, 4)
    cfg = dict(type='RISFusion', backbone=arch['backbone'], decode_head=arch['decode_head'],
               fuser=fuser, text_encoder=dict(type='HFTextEncoder',
                                              hf_config=dict(BERT_BASE_CONFIG)))
    with torch.device('meta'):
        ours = MODELS.build(cfg).state_dict()
    converted = convert_lavt_official(full_layout['model'])
    converted.update((f'fuser.{k}', v) for k, v in convert_official_fuser(
        prefusion).items())
    converted.update((f'text_encoder.model.{k}', v)
                     for k, v in convert_hf_bert(full_layout['bert_model']).items())
    _coverage(converted, ours, sum(len(part) for part in full_layout.values()))


def test_swin_key_errors_and_window_helpers():
    with pytest.raises(KeyError, match='absolute_pos_embed'):
        convert_swin_official({'absolute_pos_embed': torch.zeros(1, 4, 8)})
    table = torch.randn(13 * 13, 2)
    assert resize_relative_position_table(table, 7) is table
    assert resize_relative_position_table(table, 12).shape == (23 * 23, 2)
    index = swin_relative_position_index(3)
    assert index.shape == (9, 9) and index.min() == 0 and index.max() == 24
    assert index[0, 0] == index[4, 4] == 12  # zero offset is the table's centre


def test_hf_bert_names():
    weights = {'bert.embeddings.LayerNorm.gamma': torch.ones(2),
               'bert.embeddings.LayerNorm.beta': torch.zeros(2),
               'bert.embeddings.position_ids': torch.arange(4),
               'bert.encoder.layer.0.output.dense.weight': torch.zeros(2, 2),
               'bert.pooler.dense.weight': torch.zeros(2, 2),
               'cls.predictions.bias': torch.zeros(3)}
    assert list(convert_hf_bert(weights)) == ['embeddings.LayerNorm.weight',
                                              'embeddings.LayerNorm.bias',
                                              'encoder.layer.0.output.dense.weight']


def _tiny_bert_folder(path):
    """A Hugging Face BERT folder, 768 wide as the backbone expects, but one small layer."""
    transformers = pytest.importorskip('transformers')
    config = transformers.BertConfig(vocab_size=16, hidden_size=768, num_hidden_layers=1,
                                     num_attention_heads=12, intermediate_size=8,
                                     max_position_embeddings=24)
    transformers.BertForMaskedLM(config).save_pretrained(str(path))  # 'bert.' + 'cls.' names
    return path


def test_risfusion_converter_cli(official_tiny, derived_reference, tmp_path, capsys):
    """The CLI writes a config and weights that init_model loads strictly, BERT included."""
    from mmrisfusion.apis import init_model
    tool = _load_tool('risfusion_official')
    src = derived_reference.checkpoint_path  # official_tiny.pth
    bert = _tiny_bert_folder(tmp_path / 'bert')
    for fmt, verify in (('pth', []), ('safetensors', ['--no-verify'])):
        assert tool.main([str(src), str(tmp_path / fmt), '--bert', str(bert), '--format', fmt,
                          *verify]) == 0
        config = tmp_path / fmt / 'official_tiny.py'
        model = init_model(str(config), str(tmp_path / fmt / f'official_tiny.{fmt}'))
        assert model.cfg.model.text_encoder.model_path == str(bert)
        assert model.cfg.model.backbone.window_size == 7
        assert model.cfg.model.fuser.base_channels == 16
        torch.testing.assert_close(
            model.backbone.pwams[2].key_proj.weight,
            official_tiny['model']['backbone.layers.2.fusion.image_lang_att.f_key.0.weight'])
    assert 'verified' in capsys.readouterr().out


def test_swin_converter_cli(official_tiny, tmp_path):
    swin = {k[len('backbone.'):]: v for k, v in official_tiny['model'].items()
            if k.startswith('backbone.') and '.fusion.' not in k and '.res_gate.' not in k
            and not k.startswith('backbone.norm')}
    swin['head.weight'] = torch.zeros(3, 256)
    torch.save({'model': swin}, tmp_path / 'swin.pth')
    tool = _load_tool('swin_official')
    assert tool.main([str(tmp_path / 'swin.pth'), str(tmp_path / 'out.pth'),
                      '--window-size', '12']) == 0
    converted = load_weights_only(str(tmp_path / 'out.pth'))['state_dict']
    assert converted['stages.0.blocks.0.attn.w_msa.relative_position_bias_table'].shape == (529,
                                                                                          1)
    assert converted['stages.0.blocks.0.attn.w_msa.relative_position_index'].shape == (144, 144)
    assert not any(k.startswith('head') for k in converted)
    # A converted file passes through a second conversion unchanged.
    again = convert_swin_official(converted, window_size=12)
    assert all(torch.equal(again[k], v) for k, v in converted.items())


def test_ldfusion_converter_cli(tmp_path, hf_clip_dir, data_dir, capsys, monkeypatch):
    """The published pair (either order) or the combined file -> a checkpoint that init_model,
    inference_model and tools/test.py load strictly with the config, weights-only."""
    from mmrisfusion.apis import inference_model, init_model
    from mmrisfusion.models.fusers import LDFusionNet
    from mmrisfusion.models.utils import to_ldfusion_official
    tool = _load_tool('ldfusion_official')
    torch.manual_seed(0)
    net = LDFusionNet(base_channels=4, mlp_channels=16).eval()
    enc, dec = to_ldfusion_official(net.state_dict())
    torch.save(enc, tmp_path / 'Enc_final.pt')
    torch.save(dec, tmp_path / 'Dec_final.pt')
    torch.save({'Enc': enc, 'Dec': dec}, tmp_path / 'official_net.pth')
    config = str(REPO_ROOT / 'tests' / 'configs' / 'ldfusion_tiny.py')
    runs = {'pair.pth': ['Enc_final.pt', 'Dec_final.pt'],
            'reversed.pth': ['Dec_final.pt', 'Enc_final.pt'],
            'combined.safetensors': ['official_net.pth']}
    root = data_dir / 'ivif' / 'tno'
    for out, sources in runs.items():
        assert tool.main([*(str(tmp_path / s) for s in sources), str(tmp_path / out),
                          '--config', config]) == 0
        model = init_model(config, str(tmp_path / out), cfg_options={
            'model.losses.0.clip.pretrained': str(hf_clip_dir)})
        for key, value in net.state_dict().items():
            assert torch.equal(model.fuser.state_dict()[key], value), (out, key)
        result = inference_model(model, str(root / 'vi' / '07.png'), str(root / 'ir' / '07.png'))
        assert result.fused.shape == (256, 256, 3) and result.mask is None
    assert 'loads strictly' in capsys.readouterr().out
    # tools/test.py with the config and the converted file.
    options = [f'model.losses.0.clip.pretrained={hf_clip_dir}',
               f'test_dataloader.dataset.data_root={root}', 'test_dataloader.dataset.indices=1']
    monkeypatch.setattr(sys, 'argv', [
        'tools/test.py', config, str(tmp_path / 'pair.pth'), '--out-dir',
        str(tmp_path / 'results'), '--work-dir', str(tmp_path / 'work'), '--cfg-options',
        *options])
    runpy.run_path(str(REPO_ROOT / 'tools' / 'test.py'), run_name='__main__')
    metrics = json.loads((tmp_path / 'results' / 'metrics.json').read_text())
    assert 0 < metrics['fusion/EN'] <= 8, metrics
    meta = load_weights_only(str(tmp_path / 'pair.pth'))['meta']
    assert meta['source'] == ['Enc_final.pt', 'Dec_final.pt']
    assert meta['fuser']['base_channels'] == 4

    # The shipped config has the published 16-channel network: a clear refusal.
    with pytest.raises(SystemExit, match='not the architecture'):
        tool.main([str(tmp_path / 'official_net.pth'), str(tmp_path / 'x.pth')])
    with pytest.raises(SystemExit, match='both the published Enc'):
        tool.main([str(tmp_path / 'Enc_final.pt'), str(tmp_path / 'Enc_final.pt'),
                   str(tmp_path / 'x.pth'), '--config', config])
    with pytest.raises(SystemExit, match="'Enc'"):
        tool.main([str(tmp_path / 'Enc_final.pt'), str(tmp_path / 'x.pth'), '--config', config])
    with pytest.raises(SystemExit, match='no such file'):
        tool.main([str(tmp_path / 'nowhere.pt'), str(tmp_path / 'x.pth')])
