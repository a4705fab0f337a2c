import argparse
import importlib.util
import json
import runpy
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmrisfusion.models.utils.ckpt_convert import (
    BERT_BASE_CONFIG,
    LAVT_LAYOUTS,
    convert_hf_bert,
    convert_lavt_checkpoint,
    convert_lavt_official,
    convert_official_fuser,
    convert_swin_official,
    infer_lavt_arch,
    load_hf_bert_folder,
    official_fuser_config,
    resize_relative_position_table,
    split_lavt_checkpoint,
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


# --- LAVT checkpoints (tools/model_converters/lavt_official.py) -------------------------------

LAVT_INIT = REPO_ROOT / 'configs' / 'risfusion' / (
    'risfusion_swin-b_bert_1xb16-lavt-refcocoplus-init-10e_mm-ris-480x480.py')


def _lavt_checkpoint(layout, model, bert):
    """A checkpoint as LAVT-RIS's train.py saves it, in either of its layouts."""
    checkpoint = dict(
        optimizer=dict(state={}, param_groups=[dict(lr=5e-5, weight_decay=0.0, params=[0])]),
        epoch=39, lr_scheduler=dict(base_lrs=[5e-5], last_epoch=100, lr_lambdas=[None]),
        args=argparse.Namespace(model=layout, swin_type='base', window12=True, mha='',
                                fusion_drop=0.0, dataset='refcoco+'))
    if layout == 'lavt_one':
        checkpoint['model'] = OrderedDict(model)
        checkpoint['model'].update((f'text_encoder.{k}', v) for k, v in bert.items())
    else:
        checkpoint['model'] = OrderedDict(model)
        checkpoint['bert_model'] = OrderedDict(bert)
    return checkpoint


@pytest.mark.parametrize('layout', LAVT_LAYOUTS)
def test_full_size_lavt_lands_in_the_lavt_init_config_all_but_the_fuser(full_layout, layout):
    """Every tensor of a Swin-B LAVT checkpoint has its place in the RISFusion of the
    LAVT-init config, which then misses only the fuser."""
    checkpoint = _lavt_checkpoint(layout, full_layout['model'], full_layout['bert_model'])
    state_dict, parts, found = convert_lavt_checkpoint(checkpoint)
    assert found == layout
    assert len(state_dict) == len(full_layout['model']) + len(full_layout['bert_model'])
    assert parts['backbone']['window_size'] == 12 and parts['decode_head']['channels'] == 512
    assert parts['text_encoder']['hf_config'] == BERT_BASE_CONFIG
    cfg = Config.fromfile(str(LAVT_INIT))
    # No bert-base folder here: a bert-base of the same sizes (docs/risfusion.md#text-encoder).
    cfg.model.text_encoder.update(model_path=None, hf_config=dict(BERT_BASE_CONFIG))
    init_default_scope('mmrisfusion')
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    result = model.load_state_dict(state_dict, strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(k.startswith('fuser.') for k in result.missing_keys)
    assert set(result.missing_keys) == {k for k in model.state_dict() if k.startswith('fuser.')
                                        and not k.endswith('num_batches_tracked')}


def test_lavt_layout_errors():
    model = {'backbone.patch_embed.proj.weight': torch.zeros(1)}
    bert = {'embeddings.word_embeddings.weight': torch.zeros(1)}
    with pytest.raises(KeyError, match="no 'model'"):
        split_lavt_checkpoint({'state_dict': model})
    with pytest.raises(KeyError, match='risfusion_official.py'):
        split_lavt_checkpoint({'model': model, 'prefusion_model': {}})
    both = _lavt_checkpoint('lavt_one', model, bert)
    both['bert_model'] = bert
    with pytest.raises(ValueError, match='both'):
        split_lavt_checkpoint(both)


@pytest.fixture(scope='module')
def tiny_lavt(official_tiny, derived_reference, tmp_path_factory):
    """The tiny official model (LAVT's model layout) with a tiny BERT, in both LAVT layouts
    and as a RIS-FUSION official checkpoint converted with the same weights."""
    folder = tmp_path_factory.mktemp('tiny_lavt')
    bert_folder = _tiny_bert_folder(folder / 'bert')
    bert = load_hf_bert_folder(str(bert_folder))  # BertModel names, no pooler: LAVT's BERT
    files = {}
    for layout in LAVT_LAYOUTS:
        files[layout] = folder / f'{layout}.pth'
        torch.save(_lavt_checkpoint(layout, official_tiny['model'], bert), files[layout])
    risfusion = _load_tool('risfusion_official')
    assert risfusion.main([str(derived_reference.checkpoint_path), str(folder / 'risfusion'),
                           '--bert', str(bert_folder), '--no-verify']) == 0
    return dict(files=files, bert=bert, folder=folder,
                config=folder / 'risfusion' / 'official_tiny.py',
                risfusion_weights=folder / 'risfusion' / 'official_tiny.pth')


@pytest.mark.parametrize('layout', LAVT_LAYOUTS)
def test_lavt_converter_cli_gives_the_backbone_of_the_risfusion_layout(
        tiny_lavt, derived_reference, official_tiny, layout, tmp_path, capsys):
    """Converted LAVT weights give the same backbone outputs as the RIS-FUSION official
    layout holding the same weights, and their BERT is the source's."""
    from mmengine.runner import load_checkpoint

    from mmrisfusion.apis import init_model
    tool = _load_tool('lavt_official')
    dst = tmp_path / 'lavt_init.pth'
    assert tool.main([str(tiny_lavt['files'][layout]), str(dst), '--config',
                      str(tiny_lavt['config'])]) == 0
    out = capsys.readouterr().out
    assert f"LAVT layout '{layout}'" in out and 'verified' in out
    saved = load_weights_only(str(dst))
    assert saved['meta']['layout'] == layout
    assert len(saved['state_dict']) == len(official_tiny['model']) + len(tiny_lavt['bert'])

    reference = init_model(str(tiny_lavt['config']), str(tiny_lavt['risfusion_weights']))
    model = init_model(str(tiny_lavt['config']))  # then load_from's non-strict load
    load_checkpoint(model, str(dst), strict=False)
    io = derived_reference.io
    with torch.no_grad():
        ours = model.backbone(io['fused'], io['text_feats'], io['text_mask'])
        expected = reference.backbone(io['fused'], io['text_feats'], io['text_mask'])
    assert all(torch.equal(a, b) for a, b in zip(ours, expected))
    for key, value in tiny_lavt['bert'].items():
        assert torch.equal(model.text_encoder.model.state_dict()[key], value), key


def test_lavt_converter_refuses_another_architecture(tiny_lavt, tmp_path):
    """Tiny weights against the Swin-B LAVT-init config: an error that shows the inferred
    architecture, and nothing written."""
    tool = _load_tool('lavt_official')
    with pytest.raises(SystemExit, match='(?s)do not fit the backbone.*"embed_dims": 32'):
        tool.main([str(tiny_lavt['files']['lavt']), str(tmp_path / 'x.pth')])
    assert not (tmp_path / 'x.pth').exists()
    with pytest.raises(SystemExit, match='no such file'):
        tool.main([str(tmp_path / 'missing.pth'), str(tmp_path / 'x.pth')])
