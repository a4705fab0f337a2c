"""RISDataPreProcessor: per-modality normalisation, padding, stacking, tokens, devices."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData

from mmrisfusion.datasets import ris_collate
from mmrisfusion.models.data_preprocessor import RISDataPreProcessor
from mmrisfusion.structures import RISDataSample


def make_batch(sizes=((32, 32), (32, 32)), ir_channels=3, tokens=True, padding=None):
    gen = torch.Generator().manual_seed(0)
    vis, ir, samples = [], [], []
    for i, (h, w) in enumerate(sizes):
        vis.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen))
        ir.append(torch.randint(0, 256, (ir_channels, h, w), dtype=torch.uint8, generator=gen))
        s = RISDataSample(metainfo=dict(img_name=f'{i}.png', img_shape=(h, w)))
        if padding is not None:
            s.set_metainfo(dict(padding_size=padding))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 2, (1, h, w), generator=gen))
        if tokens:
            s.token_ids = torch.arange(10 + i, dtype=torch.long)
            s.token_mask = torch.ones(10 + i, dtype=torch.long)
        samples.append(s)
    return dict(inputs=dict(vis=vis, ir=ir), data_samples=samples)


def test_normalises_each_modality_with_its_statistics():
    pre = RISDataPreProcessor(vis_mean=(10, 20, 30), vis_std=(2, 4, 8), ir_mean=(100, ),
                              ir_std=(50, ))
    batch = make_batch()
    vis0, ir0 = batch['inputs']['vis'][0].float(), batch['inputs']['ir'][0].float()
    out = pre(batch)
    mean = torch.tensor([10., 20., 30.]).view(3, 1, 1)
    std = torch.tensor([2., 4., 8.]).view(3, 1, 1)
    assert torch.allclose(out['inputs']['vis'][0], (vis0 - mean) / std)
    assert torch.allclose(out['inputs']['ir'][0], (ir0 - 100) / 50)
    assert out['inputs']['vis'].shape == (2, 3, 32, 32)
    assert out['inputs']['vis'].dtype == torch.float32


def test_imagenet_by_default():
    pre = RISDataPreProcessor()
    assert torch.allclose(pre.vis_mean.flatten(), torch.tensor([123.675, 116.28, 103.53]))
    assert torch.allclose(pre.ir_std.flatten(), torch.tensor([58.395, 57.12, 57.375]))


def test_pads_with_size_divisor_and_updates_metainfo():
    pre = RISDataPreProcessor(size_divisor=16, pad_val=0, seg_pad_val=255)
    out = pre(make_batch(sizes=((20, 30), (33, 17)), padding=(0, 0, 0, 4)), training=True)
    vis, ir = out['inputs']['vis'], out['inputs']['ir']
    assert vis.shape == (2, 3, 48, 32) and ir.shape == (2, 3, 48, 32)
    assert (vis[0, :, 20:] == 0).all() and (vis[0, :, :, 30:] == 0).all()
    s0, s1 = out['data_samples']
    assert s0.gt_sem_seg.data.shape == (1, 48, 32)
    assert (s0.gt_sem_seg.data[0, 20:] == 255).all() and s0.gt_sem_seg.data[0, :20, :30].max() <= 1
    assert s0.pad_shape == (48, 32) and s0.img_shape == (20, 30)
    # the pipeline's own padding (here 4 rows at the bottom) accumulates
    assert s0.padding_size == (0, 2, 0, 28 + 4) and s1.padding_size == (0, 15, 0, 15 + 4)


def test_fixed_size_and_size_errors():
    out = RISDataPreProcessor(size=(40, 36))(make_batch(sizes=((20, 30), (33, 17))))
    assert out['inputs']['vis'].shape == (2, 3, 40, 36)
    with pytest.raises(ValueError, match='larger than the fixed padding size'):
        RISDataPreProcessor(size=(16, 16))(make_batch())
    with pytest.raises(ValueError, match='different sizes.*set size or size_divisor'):
        RISDataPreProcessor()(make_batch(sizes=((20, 30), (33, 17))))
    with pytest.raises(ValueError, match='at most one of size and size_divisor'):
        RISDataPreProcessor(size=(8, 8), size_divisor=8)


def test_gray_ir():
    out = RISDataPreProcessor(ir_mean=(128, ), ir_std=(64, ))(make_batch(ir_channels=1))
    assert out['inputs']['ir'].shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match=r'ir images have 1 channel\(s\) but ir_mean/ir_std '
                       'have 3/3 values; give one value'):
        RISDataPreProcessor()(make_batch(ir_channels=1))
    with pytest.raises(ValueError, match='1 or 3 values'):
        RISDataPreProcessor(ir_mean=(1, 2))


def test_mismatched_vis_and_ir_sizes():
    batch = make_batch()
    batch['inputs']['ir'][1] = batch['inputs']['ir'][1][:, :16]
    with pytest.raises(ValueError, match="sample '1.png': VIS is .* but IR is"):
        RISDataPreProcessor(size_divisor=32)(batch)


def test_stacks_tokens():
    out = RISDataPreProcessor()(make_batch())
    ids, mask = out['inputs']['token_ids'], out['inputs']['token_mask']
    assert ids.shape == mask.shape == (2, 11) and ids.dtype == torch.long
    assert ids[0, 10] == 0 and mask[0].sum() == 10 and mask[1].sum() == 11
    fusion_only = RISDataPreProcessor()(make_batch(tokens=False))
    assert set(fusion_only['inputs']) == {'vis', 'ir'}
    mixed = make_batch()
    del mixed['data_samples'][1].token_ids
    with pytest.raises(ValueError, match='some samples of the batch have token_ids'):
        RISDataPreProcessor()(mixed)


def test_accepts_a_list_of_per_sample_inputs():
    batch = make_batch()
    per_sample = dict(inputs=[dict(vis=v, ir=i) for v, i in
                              zip(batch['inputs']['vis'], batch['inputs']['ir'])],
                      data_samples=batch['data_samples'])
    expected = RISDataPreProcessor()(make_batch())
    out = RISDataPreProcessor()(per_sample)
    assert torch.equal(out['inputs']['vis'], expected['inputs']['vis'])
    with pytest.raises(TypeError, match='expects inputs=dict'):
        RISDataPreProcessor()(dict(inputs=torch.zeros(1), data_samples=None))


def _per_sample(pre, batch, size):
    """The former algorithm: normalise and pad each sample, then stack."""
    out = {}
    for key, mean, std in (('vis', pre.vis_mean, pre.vis_std), ('ir', pre.ir_mean, pre.ir_std)):
        out[key] = torch.stack([
            F.pad((img.float() - mean) / std, (0, size[1] - img.shape[2], 0,
                                               size[0] - img.shape[1]), value=pre.pad_val)
            for img in batch['inputs'][key]])
    return out


@pytest.mark.parametrize('sizes', [((32, 32), (32, 32), (32, 32)), ((20, 30), (33, 17))])
def test_stacked_or_listed_inputs_give_the_per_sample_result_bit_for_bit(sizes):
    pre = RISDataPreProcessor(size_divisor=16, pad_val=-1.5)
    expected = _per_sample(pre, make_batch(sizes), (48, 32) if sizes[1] == (33, 17) else
                           (32, 32))
    collated = ris_collate([dict(inputs=dict(vis=v, ir=i), data_samples=s) for v, i, s in zip(
        *make_batch(sizes)['inputs'].values(), make_batch(sizes)['data_samples'])])
    assert isinstance(collated['inputs']['vis'], torch.Tensor) == (len(set(sizes)) == 1)
    for batch in (make_batch(sizes), collated):
        out = pre(batch)
        for key in ('vis', 'ir'):
            assert torch.equal(out['inputs'][key], expected[key])


def test_one_copy_per_kind_of_tensor_whatever_the_batch_size():
    """Images, labels and tokens each go to the device in one (non-blocking) copy."""
    for batch_size in (2, 5):
        pre = RISDataPreProcessor(size_divisor=32)
        assert pre._non_blocking
        copies = []
        to_device = pre._to_device
        pre._to_device = lambda tensor: copies.append(tuple(tensor.shape)) or to_device(tensor)
        pre(make_batch(sizes=((32, 32), ) * batch_size))
        assert copies == [(batch_size, 3, 32, 32)] * 2 + [(batch_size, 1, 32, 32),
                                                          (2, batch_size, 10 + batch_size - 1)]


def test_built_from_the_registry_and_fed_by_the_pipeline(tmp_path):
    from mmengine.dataset import pseudo_collate

    from mmrisfusion.datasets import (
        LoadRISAnnotation,
        LoadRISImages,
        MMRISDataset,
        PackRISInputs,
        RISResize,
        make_synthetic_mmris,
    )
    from mmrisfusion.registry import MODELS
    path = make_synthetic_mmris(str(tmp_path / 'x.parquet'), 4, size=48)
    ds = MMRISDataset(path, pipeline=[LoadRISImages(), LoadRISAnnotation(),
                                      RISResize(scale=(40, 40)), PackRISInputs()])
    pre = MODELS.build(dict(type='RISDataPreProcessor', size_divisor=32))
    out = pre(pseudo_collate([ds[i] for i in range(4)]), training=True)
    assert out['inputs']['vis'].shape == (4, 3, 64, 64)
    assert out['data_samples'][0].gt_sem_seg.data.shape == (1, 64, 64)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_on_the_model_device():
    pre = RISDataPreProcessor(size_divisor=32).cuda()
    out = pre(make_batch())
    assert out['inputs']['vis'].is_cuda and out['inputs']['token_ids'].is_cuda
    assert out['data_samples'][0].gt_sem_seg.data.is_cuda
    cpu = RISDataPreProcessor(size_divisor=32)(make_batch())
    assert torch.allclose(out['inputs']['vis'].cpu(), cpu['inputs']['vis'])
