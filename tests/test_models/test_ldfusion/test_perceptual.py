"""The VGG19 max-feature perceptual term, on the features the published wrapper compares."""
import copy

import pytest
import torch
import torch.nn.functional as F

from mmrisfusion.models.losses import PerceptualMaxLoss, vgg19_features
from mmrisfusion.registry import MODELS


def test_layout_matches_torchvision_indices():
    features = vgg19_features(23)
    convs = {i for i, m in enumerate(features) if isinstance(m, torch.nn.Conv2d)}
    relus = {i for i, m in enumerate(features) if isinstance(m, torch.nn.ReLU)}
    # conv2_1, conv3_1 and conv4_2 are modules 5, 10 and 21 of torchvision's vgg19.features,
    # relu2_1, relu3_1 and relu4_2 the modules right after them.
    assert {5, 10, 21} <= convs and {6, 11, 22} <= relus
    assert (features[5].in_channels, features[10].in_channels,
            features[21].out_channels) == (64, 128, 512)


def published_features(features: torch.nn.Sequential, images: torch.Tensor) -> list:
    """What the published VGG wrapper returns: torchvision's layers with in-place ReLUs, the
    outputs of modules 5, 10 and 21 kept by reference while the loop goes on."""
    layers = copy.deepcopy(features)
    for layer in layers:
        if isinstance(layer, torch.nn.ReLU):
            layer.inplace = True
    kept, x = {}, images.repeat(1, 3, 1, 1)
    for index, layer in enumerate(layers):
        x = layer(x)
        if index in (5, 10, 21):
            kept[index] = x
    return [kept[5], kept[10], kept[21]]


def published_loss(features, fused, vis, ir):
    fu, vi, ir = (published_features(features, x) for x in (fused, vis, ir))
    return sum(F.mse_loss(f, torch.max(torch.stack([v, i], 2), 2)[0])
               for f, v, i in zip(fu, vi, ir))


@pytest.fixture
def images():
    gen = torch.Generator().manual_seed(0)
    return [torch.rand(2, 1, 32, 32, generator=gen) for _ in range(3)]


def test_post_relu_features_as_published(images):
    """The default compares relu2_1, relu3_1, relu4_2: what the published code computes,
    value and gradient; the conv outputs its labels name (5, 10, 21) give other numbers."""
    torch.manual_seed(0)
    loss = PerceptualMaxLoss(random_init=True, width_divisor=16, loss_weight=10.0)
    with torch.no_grad():  # biases as in a trained VGG, so that some conv outputs are < 0
        for layer in loss.net:
            if isinstance(layer, torch.nn.Conv2d):
                layer.bias.normal_(0.0, 0.02)
    fused, vis, ir = images
    ours_leaf = fused.clone().requires_grad_(True)
    theirs_leaf = fused.clone().requires_grad_(True)
    ours = loss(ours_leaf, vis, ir)
    theirs = 10.0 * published_loss(loss.net, theirs_leaf, vis, ir)
    torch.testing.assert_close(ours, theirs)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(ours_leaf.grad, theirs_leaf.grad)

    pre_relu = PerceptualMaxLoss(random_init=True, width_divisor=16, loss_weight=10.0,
                                 layer_indices=(5, 10, 21))
    pre_relu._hold(loss.net)
    assert not torch.allclose(pre_relu(fused, vis, ir), theirs, rtol=1e-2)


def test_loss_by_hand_and_gradient(images):
    torch.manual_seed(0)
    loss = MODELS.build(dict(type='PerceptualMaxLoss', random_init=True, width_divisor=16,
                             loss_weight=2.0))
    assert loss.layer_indices == (6, 11, 22)
    assert list(loss.parameters()) == [] and loss.state_dict() == {}
    fused, vis, ir = images
    fused.requires_grad_(True)
    value = loss(fused, vis, ir)

    def feats(x):
        outs, x = [], x.expand(-1, 3, -1, -1)
        for index, layer in enumerate(loss.net):
            x = layer(x)
            if index in (6, 11, 22):
                outs.append(x)
        return outs

    by_hand = sum(F.mse_loss(f, torch.maximum(v, i))
                  for f, v, i in zip(feats(fused), feats(vis), feats(ir)))
    torch.testing.assert_close(value, 2.0 * by_hand)
    value.backward()
    assert fused.grad.abs().sum() > 0
    # A fused image equal to the per-feature max is impossible in general, but F = V = I is 0.
    assert loss(vis, vis, vis).item() == 0.0


def test_checkpoint_loading_and_errors(tmp_path):
    torch.manual_seed(0)
    reference = vgg19_features(7)
    path = tmp_path / 'vgg19-dcbb9e9d.pth'
    torch.save({f'features.{k}': v for k, v in reference.state_dict().items()}
               | {'classifier.0.weight': torch.zeros(2, 2)}, path)
    loss = PerceptualMaxLoss(checkpoint=str(path), layer_indices=(6, ))
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(loss.net.state_dict()[key], value)

    with pytest.raises(ValueError, match='vgg19-dcbb9e9d.pth'):
        PerceptualMaxLoss()
    with pytest.raises(FileNotFoundError, match=r'nowhere\.pth.*download\.pytorch\.org'):
        PerceptualMaxLoss(checkpoint=str(tmp_path / 'nowhere.pth'))
    with pytest.raises(KeyError, match=r'features\.10\.weight'):
        PerceptualMaxLoss(checkpoint=str(path), layer_indices=(6, 11))
    with pytest.raises(ValueError, match='either checkpoint or random_init'):
        PerceptualMaxLoss(checkpoint=str(path), random_init=True)
