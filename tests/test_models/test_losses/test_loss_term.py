"""The loss-term contract: names, weights, building, and gathering scalar and dict terms."""
import pytest
import torch

from mmrisfusion.models import losses
from mmrisfusion.models.losses import (
    BaseFusionLoss,
    BaseLossTerm,
    LumaMSELoss,
    build_loss_terms,
    check_loss_name,
    loss_terms_dict,
)
from mmrisfusion.registry import MODELS


class Parts(BaseFusionLoss):
    """A term that logs two parts, as CLIPLanguageLoss(return_terms=True) does."""

    def __init__(self, loss_weight=1.0, loss_name='loss_parts'):
        super().__init__(loss_weight, loss_name)

    def forward(self, fused_y, vis_y, ir_y):
        self.check_lumas(fused_y, vis_y, ir_y)
        return {f'{self.loss_name}_vis': self.loss_weight * (fused_y - vis_y).abs().mean(),
                f'{self.loss_name}_ir': self.loss_weight * (fused_y - ir_y).abs().mean()}


class Broken(BaseFusionLoss):

    def __init__(self, result):
        super().__init__(1.0, 'loss_broken')
        self.result = result

    def forward(self, fused_y, vis_y, ir_y):
        return self.result


def _lumas():
    torch.manual_seed(0)
    return torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)


def test_every_registered_loss_keeps_the_contract():
    for name in losses.__all__:
        cls = getattr(losses, name)
        if isinstance(cls, type) and MODELS.get(name) is cls:
            assert issubclass(cls, BaseLossTerm), name


def test_loss_name_is_checked_once_for_all():
    assert check_loss_name('loss_x', 'X') == 'loss_x'
    for bad in ('x', 'lossx', None, 3):
        with pytest.raises(ValueError, match="X: loss_name must start with 'loss_'"):
            check_loss_name(bad, 'X')
    with pytest.raises(ValueError, match="Parts: loss_name must .* got 'parts'"):
        Parts(loss_name='parts')
    term = Parts(loss_weight=2.0)
    assert (term.loss_name, term.loss_weight) == ('loss_parts', 2.0)
    with pytest.raises(ValueError, match=r'Parts: fused_y, vis_y and ir_y must be \(B, 1, H, W\)'):
        term(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))


def test_build_from_modules_and_configs():
    term = Parts()
    built = build_loss_terms([term, dict(type='LumaMSELoss', source='ir')], 'Owner.losses')
    assert built[0] is term and isinstance(built[1], LumaMSELoss)
    assert len(build_loss_terms(None, 'Owner.losses')) == 0
    assert len(build_loss_terms(dict(type='LumaMSELoss'), 'Owner.losses')) == 1
    with pytest.raises(ValueError, match=r"Owner.losses: .* distinct loss_name .*'loss_mse_vis'"):
        build_loss_terms([dict(type='LumaMSELoss'), LumaMSELoss()], 'Owner.losses')
    with pytest.raises(ValueError, match='Owner.losses: Identity: loss_name'):
        build_loss_terms([torch.nn.Identity()], 'Owner.losses')
    with pytest.raises(TypeError, match='Owner.losses must be an nn.Module or a config'):
        build_loss_terms(['LumaMSELoss'], 'Owner.losses')


def test_scalar_and_dict_terms_gathered_with_a_factor():
    fused, vis, ir = _lumas()
    terms = [LumaMSELoss(loss_weight=0.5), Parts(loss_weight=2.0)]
    out = loss_terms_dict(terms, fused, vis, ir, factor=3.0)
    assert list(out) == ['loss_mse_vis', 'loss_parts_vis', 'loss_parts_ir']
    torch.testing.assert_close(out['loss_mse_vis'], 3.0 * 0.5 * ((fused - vis)**2).mean())
    torch.testing.assert_close(out['loss_parts_ir'], 3.0 * 2.0 * (fused - ir).abs().mean())
    plain = loss_terms_dict(terms, fused, vis, ir)
    torch.testing.assert_close(plain['loss_parts_vis'], out['loss_parts_vis'] / 3.0)


def test_bad_results_are_named():
    fused, vis, ir = _lumas()
    with pytest.raises(TypeError, match='Broken returned float'):
        loss_terms_dict([Broken(1.0)], fused, vis, ir)
    with pytest.raises(ValueError, match="Broken .*: loss_name must .* got 'sim'"):
        loss_terms_dict([Broken({'sim': torch.tensor(1.0)})], fused, vis, ir)
    with pytest.raises(ValueError, match="Broken returned 'loss_mse_vis', which another"):
        loss_terms_dict([LumaMSELoss(), Broken({'loss_mse_vis': torch.tensor(1.0)})], fused,
                        vis, ir)
