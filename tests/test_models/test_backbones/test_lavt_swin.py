import copy

import pytest
import torch
from mmseg.models.backbones.swin import ShiftWindowMSA

from mmrisfusion.models.backbones import LAVTSwinTransformer
from mmrisfusion.models.backbones.lavt_swin import (
    ShiftWindowAttention,
    SwinPatchMerging,
    shift_window_mask,
)
from mmrisfusion.models.layers import PWAM, LanguageGate
from mmrisfusion.models.layers.lavt_fusion import coordinate_channels, running_max
from mmrisfusion.models.utils.ckpt_convert import convert_lavt_official, infer_lavt_arch
from mmrisfusion.registry import MODELS

TINY = dict(embed_dims=16, depths=(1, 2, 1, 1), num_heads=(1, 2, 2, 4), window_size=4,
            fusion_heads=(1, 2, 1, 1), text_dims=24, drop_path_rate=0.0)


def _text(batch=2, words=6, dims=24, valid=(3, 6)):
    feats = torch.randn(batch, words, dims)
    mask = torch.zeros(batch, words, dtype=torch.long)
    for b, n in enumerate(valid):
        mask[b, :n] = 1
    return feats, mask


def _official_backbone(checkpoint):
    arch = infer_lavt_arch(checkpoint['model'], checkpoint['args'])['backbone']
    arch.pop('type')
    backbone = LAVTSwinTransformer(**arch)
    weights = {k[len('backbone.'):]: v for k, v in convert_lavt_official(
        checkpoint['model']).items() if k.startswith('backbone.')}
    backbone.load_state_dict(weights, strict=True)
    return backbone.eval()


def test_reproduces_reference_backbone_outputs(tiny_reference):
    """Converted official weights, fed the reference fused image, give its four maps.

    The maps amplify float32 rounding about 1e4 times (instance norms on channels whose
    spread is tiny next to their mean), so each is compared within 1e-4 plus twice its
    rounding noise, measured as our float32 run against our float64 run (see
    tools/analysis_tools/check_reference.py). A wrong layer gives differences of order 1.
    """
    checkpoint, io = tiny_reference.checkpoint, tiny_reference.io
    backbone = _official_backbone(checkpoint)
    assert backbone.window_size == 7 and backbone.depths == (1, 1, 2, 1)
    with torch.no_grad():
        outs = backbone(io['fused'], io['text_feats'], io['text_mask'])
        exact = copy.deepcopy(backbone).double()(io['fused'].double(),
                                                 io['text_feats'].double(), io['text_mask'])
    assert len(outs) == len(io['backbone_outs']) == 4
    for ours, precise, theirs in zip(outs, exact, io['backbone_outs']):
        assert ours.shape == theirs.shape
        noise = (ours.double() - precise).abs().max().item()
        assert noise < 5e-3
        assert (ours - theirs).abs().max().item() <= 1e-4 + 2 * noise


@pytest.mark.parametrize('size', [(64, 64), (60, 44)])
def test_output_shapes_with_padding(size):
    """Sizes that are no multiple of the window or of 2 are padded as in Swin-Seg."""
    backbone = LAVTSwinTransformer(**TINY).eval()
    feats, mask = _text()
    outs = backbone(torch.randn(2, 3, *size), feats, mask)
    h, w = -(-size[0] // 4), -(-size[1] // 4)
    for i, out in enumerate(outs):
        assert out.shape == (2, 16 * 2**i, h, w)
        h, w = -(-h // 2), -(-w // 2)


def test_padded_words_are_ignored():
    torch.manual_seed(0)
    backbone = LAVTSwinTransformer(**TINY).eval()
    image = torch.randn(2, 3, 64, 64)
    feats, mask = _text()
    changed_pad, changed_word = feats.clone(), feats.clone()
    changed_pad[0, 4:] += 5.0  # sample 0 has 3 words: these are padding
    changed_word[0, 1] += 5.0
    with torch.no_grad():
        base = backbone(image, feats, mask)
        pad = backbone(image, changed_pad, mask)
        word = backbone(image, changed_word, mask)
    for a, b, c in zip(base, pad, word):
        torch.testing.assert_close(a, b)
        assert (a[0] - c[0]).abs().max() > 1e-3
        torch.testing.assert_close(a[1], c[1])  # the other sample is untouched


def test_train_returns_self_and_every_parameter_learns():
    backbone = LAVTSwinTransformer(**TINY)
    assert backbone.train() is backbone and backbone.eval() is backbone
    backbone.train()
    feats, mask = _text()
    sum(out.mean() for out in backbone(torch.randn(2, 3, 64, 64), feats, mask)).backward()
    no_grad = [n for n, p in backbone.named_parameters() if p.grad is None]
    # Only the last gate feeds nothing (no later stage), as in LAVT.
    assert no_grad == ['lang_gates.3.fc1.weight', 'lang_gates.3.fc2.weight']


def test_default_is_swin_b():
    with torch.device('meta'):
        backbone = LAVTSwinTransformer()
    assert backbone.num_features == [128, 256, 512, 1024]
    assert backbone.stages[2].blocks[0].attn.w_msa.relative_position_bias_table.shape == (529,
                                                                                        16)
    assert len(backbone.stages[2].blocks) == 18


def test_bad_inputs():
    with pytest.raises(ValueError, match='fusion_heads'):
        LAVTSwinTransformer(**{**TINY, 'fusion_heads': (1, 1)})
    backbone = LAVTSwinTransformer(**TINY)
    feats, mask = _text()
    with pytest.raises(ValueError, match='text_mask'):
        backbone(torch.randn(2, 3, 64, 64), feats, mask[:, :3])
    with pytest.raises(ValueError, match='too small'):
        backbone(torch.randn(2, 3, 32, 32), feats, mask)
    with pytest.raises(ValueError, match=r'\(B, 24, T\)'):
        backbone(torch.randn(2, 3, 64, 64), torch.randn(2, 6, 7), mask)


def test_missing_pretrained_file_names_it(tmp_path):
    missing = tmp_path / 'swin_base_patch4_window12_384_22k.pth'
    backbone = LAVTSwinTransformer(**TINY, pretrained=str(missing))
    with pytest.raises(FileNotFoundError, match='swin_base_patch4_window12_384_22k.pth'):
        backbone.init_weights()


def _official_swin_file(checkpoint, path):
    """An ImageNet-style official Swin file from the official LAVT weights."""
    swin = {k[len('backbone.'):]: v for k, v in checkpoint['model'].items()
            if k.startswith('backbone.') and '.fusion.' not in k and '.res_gate.' not in k
            and not k.startswith('backbone.norm')}
    dims = swin['layers.3.blocks.0.norm1.weight'].shape[0]
    swin.update({'norm.weight': torch.ones(dims), 'norm.bias': torch.zeros(dims),
                 'head.weight': torch.zeros(5, dims), 'head.bias': torch.zeros(5),
                 'layers.2.blocks.1.attn_mask': torch.zeros(4, 49, 49)})
    torch.save({'model': swin}, path)
    return swin


def test_loads_official_swin_weights(derived_reference, tmp_path):
    """init_cfg Pretrained reads an official Swin file; language modules keep their init."""
    checkpoint = derived_reference.checkpoint  # the official layout
    _official_swin_file(checkpoint, tmp_path / 'swin.pth')
    arch = infer_lavt_arch(checkpoint['model'])['backbone']
    arch.pop('type')
    backbone = LAVTSwinTransformer(
        **arch, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'swin.pth')))
    backbone.init_weights()
    reference = _official_backbone(checkpoint).state_dict()
    ours = backbone.state_dict()
    swin_keys = [k for k in reference if not k.startswith(('pwams.', 'lang_gates.', 'norm'))]
    assert len(swin_keys) > 40
    for key in swin_keys:
        torch.testing.assert_close(ours[key], reference[key], msg=key)


def test_loads_official_swin_with_another_window(derived_reference, tmp_path):
    checkpoint = derived_reference.checkpoint  # the official layout
    _official_swin_file(checkpoint, tmp_path / 'swin.pth')
    arch = infer_lavt_arch(checkpoint['model'])['backbone']
    arch.update(window_size=12)
    arch.pop('type')
    backbone = LAVTSwinTransformer(**arch, pretrained=str(tmp_path / 'swin.pth'))
    backbone.init_weights()
    attn = backbone.stages[0].blocks[0].attn.w_msa
    assert attn.relative_position_bias_table.shape == (23 * 23, 1)
    # The resized table keeps the centre (zero offset) value up to interpolation.
    table7 = checkpoint['model']['backbone.layers.0.blocks.0.attn.relative_position_bias_table']
    assert torch.isclose(attn.relative_position_bias_table[23 * 11 + 11], table7[13 * 6 + 6],
                         atol=1e-5).all()
    assert backbone(torch.randn(1, 3, 64, 64), *_text(1, 4, 768, (2, ))) is not None


def test_pwam_heads_split_channels():
    pwam = PWAM(8, text_dims=4, num_heads=2).eval()
    x, text = torch.randn(2, 10, 8), torch.randn(2, 4, 5)
    mask = torch.ones(2, 5)
    out = pwam(x, text, mask)
    assert out.shape == (2, 10, 8)
    with pytest.raises(ValueError, match='divide'):
        PWAM(8, num_heads=3)
    gate = LanguageGate(8)
    assert gate(out).abs().max() < 1


def test_pwam_coordinate_channels():
    """with_coords: registered option; the x/y channels (x along the rows of the row-major
    map) make a spatially constant input position-dependent; gradients reach the weights of
    the coordinate channels; the map's shape is required."""
    torch.manual_seed(0)
    pwam = MODELS.build(dict(type='PWAM', embed_dims=8, text_dims=4, with_coords=True))
    assert pwam.query_proj.in_channels == pwam.vis_proj.in_channels == 10
    grid = coordinate_channels(torch.zeros(1, 8, 6), (2, 3))
    assert torch.equal(grid[0, 0], torch.tensor([-1., 0., 1., -1., 0., 1.]))
    assert torch.equal(grid[0, 1], torch.tensor([-1., -1., -1., 1., 1., 1.]))
    x = torch.ones(2, 6, 8).requires_grad_()
    text, mask = torch.randn(2, 4, 5), torch.ones(2, 5)
    out = pwam(x, text, mask, (2, 3))
    assert out.shape == (2, 6, 8)
    assert (out[0] - out[0, :1]).abs().amax() > 1e-3  # differs across pixels
    out.square().sum().backward()
    assert pwam.query_proj.weight.grad[:, 8:].abs().sum() > 0
    assert pwam.vis_proj.weight.grad[:, 8:].abs().sum() > 0
    assert x.grad.abs().sum() > 0
    plain = PWAM(8, text_dims=4)(torch.ones(2, 6, 8), text, mask)
    # Blind to position: equal up to rounding, which the instance norms of a constant
    # input amplify (up to ~3e-5 depending on the weights and the thread count).
    assert (plain[0] - plain[0, :1]).abs().amax() < 1e-4
    with pytest.raises(ValueError, match='hw_shape'):
        pwam(x, text, mask)
    with pytest.raises(ValueError, match='hw_shape'):
        pwam(x, text, mask, (4, 4))


def test_backbone_fusion_coords():
    backbone = LAVTSwinTransformer(**TINY, fusion_coords=True)
    assert all(p.with_coords for p in backbone.pwams)
    assert not any(p.with_coords for p in LAVTSwinTransformer(**TINY).pwams)
    outs = backbone(torch.randn(2, 3, 64, 48), *_text())
    assert [tuple(o.shape) for o in outs] == [(2, 16, 16, 12), (2, 32, 8, 6), (2, 64, 4, 3),
                                              (2, 128, 2, 2)]
    sum(o.sum() for o in outs).backward()
    assert all(p.grad is not None for p in backbone.pwams.parameters())


def test_horizontal_context_summarises_each_side_without_the_column():
    """Per column: max and mean over the rows; per side of each column (the column left
    out): max (at least 0) and sum / W of those; projected and added to every row."""
    torch.manual_seed(0)
    module = MODELS.build(dict(type='HorizontalContext', embed_dims=3))
    assert module.text_gate is None
    x = torch.randn(2, 4 * 5, 3, requires_grad=True)
    out = module(x, (4, 5))
    cols = x.view(2, 4, 5, 3)
    col_max, col_mean = cols.amax(1), cols.mean(1)
    expected = torch.empty(2, 5, 12)
    for col in range(5):
        zero = torch.zeros(2, 1, 3)  # the value of an empty side
        left_max = torch.cat([zero, col_max[:, :col]], dim=1).amax(1)
        right_max = torch.cat([zero, col_max[:, col + 1:]], dim=1).amax(1)
        expected[:, col] = torch.cat([left_max, right_max, col_mean[:, :col].sum(1) / 5,
                                      col_mean[:, col + 1:].sum(1) / 5], dim=-1)
    torch.testing.assert_close(out.view(2, 4, 5, 3), cols + module.proj(expected)[:, None])
    out.sum().backward()
    assert x.grad.abs().sum() > 0 and module.proj.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r'\(B, 4 \* 4, 3\)'):
        module(x, (4, 4))


def test_running_max_is_cummax():
    torch.manual_seed(0)
    x = torch.randn(3, 7, 5)
    x[0, 2] = float('inf')
    assert torch.equal(running_max(x), x.cummax(1).values)


def test_horizontal_context_sentence_gate():
    """The sentence scales the four summaries by 2 * sigmoid(Linear(sentence)): a zero
    gate layer leaves them as they are; each expression gets its own scale."""
    torch.manual_seed(0)
    module = MODELS.build(dict(type='HorizontalContext', embed_dims=3, text_dims=5))
    plain = MODELS.build(dict(type='HorizontalContext', embed_dims=3))
    plain.proj.load_state_dict(module.proj.state_dict())
    x, sentence = torch.randn(2, 4 * 5, 3), torch.randn(2, 5)
    torch.nn.init.zeros_(module.text_gate.weight)
    torch.nn.init.zeros_(module.text_gate.bias)
    torch.testing.assert_close(module(x, (4, 5), sentence), plain(x, (4, 5)))
    torch.nn.init.normal_(module.text_gate.weight)
    first = module(x[:1], (4, 5), sentence[:1])
    torch.testing.assert_close(module(x, (4, 5), sentence)[:1], first)
    assert not torch.allclose(first, plain(x[:1], (4, 5)))
    with pytest.raises(ValueError, match='needs the sentence'):
        module(x, (4, 5))


def test_backbone_horizontal_context():
    backbone = LAVTSwinTransformer(**TINY, horizontal_context=True)
    assert LAVTSwinTransformer(**TINY).horizontal_contexts is None
    assert all(c.text_gate is None for c in backbone.horizontal_contexts)
    outs = backbone(torch.randn(2, 3, 64, 48), *_text())
    sum(o.sum() for o in outs).backward()
    assert all(p.grad is not None for p in backbone.horizontal_contexts.parameters())


def test_backbone_context_text_gate_reads_the_valid_words_only():
    torch.manual_seed(0)
    backbone = LAVTSwinTransformer(**TINY, horizontal_context=True,
                                   context_text_gate=True).eval()
    sentences = []
    backbone.horizontal_contexts[0].register_forward_pre_hook(
        lambda module, args: sentences.append(args[2]))
    img, (feats, mask) = torch.randn(2, 3, 64, 48), _text()
    outs = backbone(img, feats, mask)
    torch.testing.assert_close(sentences[0][0], feats[0, :3].mean(0))
    torch.testing.assert_close(sentences[0][1], feats[1].mean(0))
    padded = feats.clone()
    padded[0, 3:] = 100.0  # padding words must not change anything
    for out, reference in zip(backbone(img, padded, mask), outs, strict=True):
        torch.testing.assert_close(out, reference)
    backbone.train()
    sum(o.sum() for o in backbone(img, feats, mask)).backward()
    assert all(c.text_gate.weight.grad.abs().sum() > 0 for c in backbone.horizontal_contexts)
    with pytest.raises(ValueError, match='needs horizontal_context=True'):
        LAVTSwinTransformer(**TINY, context_text_gate=True)


@pytest.mark.parametrize('size', [(4, 6), (5, 3)])
def test_patch_merging_is_the_official_concat_order(size):
    """Tokens merge as Linear(LN([x00, x10, x01, x11])), odd sides zero-padded."""
    height, width = size
    merging = SwinPatchMerging(3, 5)
    torch.nn.init.normal_(merging.norm.weight)
    torch.nn.init.normal_(merging.norm.bias)
    tokens = torch.randn(2, height * width, 3)
    merged, shape = merging(tokens, (height, width))
    assert shape == ((height + 1) // 2, (width + 1) // 2)
    grid = torch.zeros(2, 2 * shape[0], 2 * shape[1], 3)
    grid[:, :height, :width] = tokens.view(2, height, width, 3)
    expected = []
    for i in range(shape[0]):
        for j in range(shape[1]):
            block = [grid[:, 2 * i + di, 2 * j + dj]
                     for di, dj in ((0, 0), (1, 0), (0, 1), (1, 1))]
            expected.append(merging.reduction(merging.norm(torch.cat(block, dim=-1))))
    torch.testing.assert_close(merged, torch.stack(expected, dim=1))
    with pytest.raises(ValueError, match='do not form a 4x4 map'):
        merging(tokens, (4, 4))


def _mmseg_attention(attn):
    """mmseg's ShiftWindowMSA around the same parameters: the previous implementation."""
    ref = ShiftWindowMSA(attn.w_msa.embed_dims, attn.w_msa.num_heads, attn.window_size,
                         shift_size=attn.shift_size)
    ref.w_msa, ref.drop = attn.w_msa, attn.drop
    return ref


@pytest.mark.parametrize('shift', [0, 3])
@pytest.mark.parametrize('hw', [(24, 24), (15, 21)])
def test_shift_window_attention_is_mmsegs(shift, hw):
    """Same outputs and gradients as mmseg's ShiftWindowMSA, padded or not, shifted or not,
    with and without gradients (the fused kernel runs without)."""
    torch.manual_seed(0)
    attn = ShiftWindowAttention(ShiftWindowMSA(32, 4, 6, shift_size=shift))
    torch.nn.init.normal_(attn.w_msa.relative_position_bias_table, std=0.5)
    ref = _mmseg_attention(attn)
    x = torch.randn(2, hw[0] * hw[1], 32, requires_grad=True)
    params = [x, *attn.w_msa.parameters()]
    ours, theirs = attn(x, hw), ref(x, hw)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    weight = torch.randn_like(ours)
    for g_ours, g_theirs in zip(torch.autograd.grad((ours * weight).sum(), params),
                                torch.autograd.grad((theirs * weight).sum(), params)):
        torch.testing.assert_close(g_ours, g_theirs, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(attn(x, hw), ref(x, hw), rtol=0, atol=1e-5)


def test_swin_b_shaped_logits_equal_mmsegs_attention(tiny_ris_config_file):
    """A reduced Swin-B-shaped RIS-FUSION (window 12, two blocks per stage, so shifted
    blocks; stages of 24, 12, 6 and 3 tokens a side, the last three padded): logits within
    1e-4 of the same model with mmseg's window attention, on random inputs."""
    from mmengine.config import Config

    from mmrisfusion.registry import MODELS
    from mmrisfusion.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(str(tiny_ris_config_file))
    cfg.model.backbone.update(window_size=12, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    assert model.backbone.stages[0].blocks[1].attn.shift_size == 6
    for stage in model.backbone.stages:  # no longer zero: the masks matter
        for block in stage.blocks:
            torch.nn.init.normal_(block.attn.w_msa.relative_position_bias_table, std=0.5)
    vis, ir = torch.randn(2, 3, 96, 96), torch.randn(2, 3, 96, 96)
    feats, mask = torch.randn(2, 20, cfg.model.backbone.text_dims), torch.ones(2, 20)
    mask[1, 9:] = 0
    with torch.no_grad():
        ours = model.forward_with_text_feats(vis, ir, feats, mask)[2]
        for stage in model.backbone.stages:
            for block in stage.blocks:
                block.attn = _mmseg_attention(block.attn)
        theirs = model.forward_with_text_feats(vis, ir, feats, mask)[2]
    assert ours.shape == (2, 2, 96, 96)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)


def test_shift_mask_made_while_exporting_is_not_cached():
    """torch.export traces with fake tensors: a mask made then must not be handed to a later
    eager call (the ONNX export's own check then failed on a tensor subclass)."""

    class AddMask(torch.nn.Module):
        def forward(self, x):
            return x + shift_window_mask(20, 25, 5, 2, x.device).sum()

    torch.export.export(AddMask(), (torch.zeros(1), ))
    mask = shift_window_mask(20, 25, 5, 2, torch.device('cpu'))
    assert type(mask) is torch.Tensor and mask.shape == (20, 25, 25)
    assert shift_window_mask(20, 25, 5, 2, torch.device('cpu')) is mask  # cached when eager
