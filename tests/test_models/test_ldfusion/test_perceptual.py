"""The VGG19 max-feature perceptual term."""
import pytest
import torch
import torch.nn.functional as F

from mmrisfusion.models.losses import PerceptualMaxLoss, vgg19_features
from mmrisfusion.registry import MODELS


def test_layout_matches_torchvision_indices():
    features = vgg19_features(22)
    convs = {i for i, m in enumerate(features) if isinstance(m, torch.nn.Conv2d)}
    # conv2_1, conv3_1 and conv4_2 are modules 5, 10 and 21 of torchvision's vgg19.features.
    assert {5, 10, 21} <= convs
    assert (features[5].in_channels, features[10].in_channels,
            features[21].out_channels) == (64, 128, 512)


def test_loss_by_hand_and_gradient():
    torch.manual_seed(0)
    loss = MODELS.build(dict(type='PerceptualMaxLoss', random_init=True, width_divisor=16,
                             loss_weight=2.0))
    assert list(loss.parameters()) == [] and loss.state_dict() == {}
    fused = torch.rand(2, 1, 32, 32, requires_grad=True)
    vis, ir = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    value = loss(fused, vis, ir)

    def feats(x):
        outs, x = [], x.expand(-1, 3, -1, -1)
        for index, layer in enumerate(loss.net):
            x = layer(x)
            if index in (5, 10, 21):
                outs.append(x)
        return outs

    by_hand = sum(F.mse_loss(f, torch.maximum(v, i))
                  for f, v, i in zip(feats(fused), feats(vis), feats(ir)))
    torch.testing.assert_close(value, 2.0 * by_hand)
    # The conv outputs are compared before their ReLU (which must not overwrite them).
    assert min(t.min() for t in feats(vis)) < 0
    value.backward()
    assert fused.grad.abs().sum() > 0
    # A fused image equal to the per-feature max is impossible in general, but F = V = I is 0.
    assert loss(vis, vis, vis).item() == 0.0


def test_checkpoint_loading_and_errors(tmp_path):
    torch.manual_seed(0)
    reference = vgg19_features(6)
    path = tmp_path / 'vgg19-dcbb9e9d.pth'
    torch.save({f'features.{k}': v for k, v in reference.state_dict().items()}
               | {'classifier.0.weight': torch.zeros(2, 2)}, path)
    loss = PerceptualMaxLoss(checkpoint=str(path), layer_indices=(5, ))
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(loss.net.state_dict()[key], value)

    with pytest.raises(ValueError, match='vgg19-dcbb9e9d.pth'):
        PerceptualMaxLoss()
    with pytest.raises(FileNotFoundError, match=r'nowhere\.pth.*download\.pytorch\.org'):
        PerceptualMaxLoss(checkpoint=str(tmp_path / 'nowhere.pth'))
    with pytest.raises(KeyError, match=r'features\.10\.weight'):
        PerceptualMaxLoss(checkpoint=str(path), layer_indices=(5, 10))
    with pytest.raises(ValueError, match='either checkpoint or random_init'):
        PerceptualMaxLoss(checkpoint=str(path), random_init=True)
