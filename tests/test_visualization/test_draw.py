"""The drawing helpers: layouts, overlays and panels, checked pixel by pixel."""
import numpy as np
import pytest
import torch

from mmrisfusion.visualization.draw import (
    GT_COLOR,
    PRED_COLOR,
    draw_ris_panel,
    make_panel,
    overlay_mask,
    resize_to,
    to_binary_mask,
    to_uint8_image,
)


def test_to_uint8_image_layouts():
    chw_float = torch.zeros(3, 4, 5)
    chw_float[0] = 1.0
    out = to_uint8_image(chw_float)
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8
    assert (out[..., 0] == 255).all() and (out[..., 1:] == 0).all()
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5)
    out = to_uint8_image(gray)
    assert out.shape == (4, 5, 3) and (out[..., 2] == gray).all()
    one_channel = torch.from_numpy(gray)[None]
    assert (to_uint8_image(one_channel) == out).all()
    with pytest.raises(ValueError, match='channels'):
        to_uint8_image(np.zeros((4, 5, 2), np.uint8))
    # the type gives the layout, whatever the shape: images 1 or 3 pixels wide
    narrow = torch.arange(63, dtype=torch.uint8).reshape(3, 7, 3)  # (C, H, W)
    assert (to_uint8_image(narrow) == narrow.permute(1, 2, 0).numpy()).all()
    assert (to_uint8_image(narrow.numpy()) == narrow.numpy()).all()  # (H, W, C)
    with pytest.raises(ValueError, match=r'\(C, H, W\) tensor of 7 channels'):
        to_uint8_image(torch.zeros(7, 4, 5))


def test_to_binary_mask_and_resize():
    mask = torch.tensor([[[0, 1], [2, 0]]])
    assert to_binary_mask(mask).tolist() == [[False, True], [True, False]]
    with pytest.raises(ValueError, match='mask'):
        to_binary_mask(np.zeros((2, 2, 2)))
    big = resize_to(to_binary_mask(mask), (4, 4))
    assert big.dtype == np.bool_ and big[:2, 2:].all() and not big[:2, :2].any()


def test_overlay_mask_tints_only_the_mask():
    image = np.full((8, 8, 3), 100, np.uint8)
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 1
    out = overlay_mask(image, mask, PRED_COLOR, alpha=0.5, contour=False)
    assert out[3, 3].tolist() == [178, 50, 50]
    assert out[0, 0].tolist() == [100, 100, 100]
    outlined = overlay_mask(image, mask, GT_COLOR, alpha=0.5)
    assert outlined[2, 2].tolist() == list(GT_COLOR)
    assert outlined[3, 3].tolist() == [50, 178, 50]
    # A mask at another size is resized onto the image.
    small = overlay_mask(image, mask[::2, ::2], PRED_COLOR, alpha=1.0, contour=False)
    assert small[2:6, 2:6].tolist() == [[list(PRED_COLOR)] * 4] * 4


def test_make_panel_layout_and_caption():
    tiles = [('a', np.zeros((10, 12, 3), np.uint8)), ('b', np.full((20, 24), 255, np.uint8))]
    panel = make_panel(tiles)
    assert panel.shape[1] == 2 * 12 + 2
    with_caption = make_panel(tiles, caption='the warm person on the left of the car ' * 3)
    assert with_caption.shape[0] > panel.shape[0]
    assert with_caption.shape[1] == panel.shape[1]
    # The second tile (resized to the first one's size) is white below its title.
    assert (panel[-5:, 14:26] == 255).all()
    with pytest.raises(ValueError, match='at least one'):
        make_panel([])


def test_a_long_expression_keeps_the_panel_small():
    """A 5000-character expression gets three caption lines, the last cut with ' ...'."""
    vis = np.zeros((64, 64, 3), np.uint8)
    short = draw_ris_panel(vis, vis, text='the warm person on the left')
    three_lines = draw_ris_panel(vis, vis, text='the warm person on the left ' * 4)
    huge = draw_ris_panel(vis, vis, text='the warm person on the left ' * 180)
    assert short.shape[0] < three_lines.shape[0] == huge.shape[0] < 2 * 64 + 10


def test_draw_ris_panel_tiles():
    vis = np.zeros((16, 16, 3), np.uint8)
    ir = np.full((16, 16), 200, np.uint8)
    fused = torch.full((3, 16, 16), 0.5)
    pred = torch.zeros(1, 16, 16, dtype=torch.long)
    pred[0, 4:12, 4:12] = 1
    full = draw_ris_panel(vis, ir, fused, pred, pred, text='the car')
    fusion_only = draw_ris_panel(vis, ir, fused)
    assert fusion_only.shape[1] == 3 * 16 + 2 * 2
    assert full.shape[1] == 5 * 16 + 4 * 2
    assert full.shape[0] > fusion_only.shape[0]  # the caption strip
    title = full.shape[0] - fusion_only.shape[0]
    top = fusion_only.shape[0] - 16
    prediction = full[top:top + 16, 3 * 18:3 * 18 + 16]
    gt = full[top:top + 16, 4 * 18:4 * 18 + 16]
    assert title > 0
    assert prediction[8, 8, 0] > prediction[8, 8, 1]  # red inside the predicted mask
    assert gt[8, 8, 1] > gt[8, 8, 0]  # green inside the GT
    assert prediction[0, 0].tolist() == [128, 128, 128]
