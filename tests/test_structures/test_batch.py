"""Reading a sample's source images out of every collated batch layout."""
import torch

from mmrisfusion.structures import batch_input

VIS = [torch.full((3, 2, 2), k, dtype=torch.uint8) for k in range(2)]
IR = [torch.full((1, 2, 2), 10 + k, dtype=torch.uint8) for k in range(2)]


def test_every_layout():
    layouts = [
        dict(vis=VIS, ir=IR),  # pseudo_collate
        dict(vis=torch.stack(VIS), ir=torch.stack(IR)),  # default_collate
        [dict(vis=v, ir=i) for v, i in zip(VIS, IR)],  # a list of per-sample dicts
        # TestTimeAug: a batch per view; the first view's images (RISTTAModel's sample)
        [dict(vis=VIS, ir=IR), dict(vis=[v.flip(-1) + 1 for v in VIS], ir=IR)],
        [dict(vis=torch.stack(VIS), ir=torch.stack(IR))] * 2,
    ]
    for inputs in layouts:
        for index in range(2):
            assert torch.equal(batch_input(inputs, 'vis', index), VIS[index])
            assert torch.equal(batch_input(inputs, 'ir', index), IR[index])


def test_missing_entries_are_none():
    assert batch_input(dict(vis=VIS), 'ir', 0) is None
    assert batch_input(dict(vis=VIS), 'vis', 2) is None
    assert batch_input([dict(vis=VIS[0])], 'ir', 0) is None
    assert batch_input([dict(vis=VIS[0])], 'vis', 1) is None
    assert batch_input(None, 'vis', 0) is None
    assert batch_input(torch.zeros(2, 3, 2, 2), 'vis', 0) is None
