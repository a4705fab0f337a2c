"""Synthetic MM-RIS: scenes, referring expressions and masks in the official parquet schema.

The embedded demo and the tests need MM-RIS-shaped data without downloading the real set.
The scenes are built so that a model cannot shortcut the task:

- every scene holds several objects (people, cars, bicycles, dogs) and one or two trees;
  a fixed share of scenes holds two or more objects of the same category, so the category
  word alone does not find the target;
- VIS shows colour and texture but, in night scenes, hides every object in darkness and, in
  fog, the distant ones; IR shows warm objects bright and cold ones faint and carries no
  colour. Colour words are only used for objects VIS shows; warm/cold words name what IR
  shows. So some targets are visible in one modality only and fusion matters;
- expressions come from varied templates over category, colour, temperature, size,
  position ("on the left", "the second ... from the right") and relations ("next to the
  tree", "to the left of the car"); each is checked against every object of the scene and
  kept only when it matches exactly the target.

Everything is deterministic in ``seed``: scene ``i`` of a split depends only on
``(seed, split, i)``, so a larger request starts with the rows of a smaller one.
"""
import math
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .mm_ris_format import MMRISParquetWriter, encode_npy

COLOURS = {
    'red': (200, 35, 35), 'blue': (35, 70, 205), 'green': (40, 160, 60),
    'yellow': (225, 205, 40), 'white': (235, 235, 235), 'black': (28, 28, 30),
}
# Base height and width as a fraction of the image side at the nearest ground line,
# the probability of being warm, and the nouns an expression may use.
CATEGORIES = {
    'person': dict(height=0.36, width=0.13, p_warm=0.95, nouns=('person', 'pedestrian')),
    'car': dict(height=0.2, width=0.38, p_warm=0.5, nouns=('car', 'vehicle')),
    'bicycle': dict(height=0.2, width=0.28, p_warm=0.0, nouns=('bicycle', 'bike')),
    'dog': dict(height=0.14, width=0.2, p_warm=0.9, nouns=('dog',)),
}
LIGHTING = (('day', 0.45), ('night', 0.35), ('fog', 0.2))
ORDINALS = ('first', 'second', 'third', 'fourth')
HORIZON = 0.4  # the ground starts at this fraction of the image height
# What singles the target out, as expression_kind() reads it from the words.
EXPRESSION_KINDS = ('category', 'colour', 'temperature', 'size', 'relation', 'position')
_POSITION = re.compile(r'\b(?:left|right)most\b|\b(?:on|from) the (?:left|right)\b')
_SIZE_WORDS = {'big', 'bigger', 'larger', 'small', 'smaller'}
_TEMPERATURE_WORDS = {'warm', 'hot', 'cold'}


def expression_kind(text: str) -> str:
    """What a synthetic expression uses to single its target out, from its templates.

    ``'position'``: absolute position or order ("the rightmost bicycle", "the person on the
    left", "the second warm dog from the right"); ``'relation'``: another object ("next to
    the tree", "left of the car"); ``'size'``; ``'colour'``; ``'temperature'``;
    ``'category'``: the noun alone. The first that applies, in this order, wins.

    Args:
        text (str): An expression made by :class:`SyntheticMMRIS`.

    Returns:
        str: One of :data:`EXPRESSION_KINDS`.
    """
    words = set(re.findall(r'[a-z]+', text.lower()))
    if _POSITION.search(text.lower()):
        return 'position'
    if 'tree' in words or ' of the ' in text:
        return 'relation'
    if words & _SIZE_WORDS:
        return 'size'
    if words & set(COLOURS):
        return 'colour'
    if words & _TEMPERATURE_WORDS:
        return 'temperature'
    return 'category'


@dataclass
class SceneObject:
    """One object of a synthetic scene; geometry in pixels."""
    idx: int
    category: str
    colour: str
    warm: bool
    x: float  # horizontal centre
    y: float  # bottom (ground contact)
    scale: float
    vis_visible: bool = True
    mask: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass
class Scene:
    """A rendered scene: VIS (H, W, 3 RGB), IR (H, W gray), its objects and tree positions."""
    vis: np.ndarray
    ir: np.ndarray
    lighting: str
    objects: List[SceneObject]
    trees: List[float]


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: random values on a coarse grid, upsampled."""
    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC).clip(-1, 1)


def _draw_object(canvas: np.ndarray, obj: SceneObject, value, size: int) -> None:
    """Draw ``obj``'s silhouette on ``canvas`` with ``value`` (a colour or an id)."""
    spec = CATEGORIES[obj.category]
    h = spec['height'] * size * obj.scale
    w = spec['width'] * size * obj.scale
    x, y = obj.x, obj.y
    t = max(1, int(round(h * 0.06)))

    def pt(dx: float, dy: float) -> Tuple[int, int]:
        return int(round(x + dx * w)), int(round(y - dy * h))

    if obj.category == 'person':
        cv2.circle(canvas, pt(0, 0.88), max(1, int(h * 0.11)), value, -1)
        cv2.ellipse(canvas, pt(0, 0.58), (max(1, int(w * 0.42)), max(1, int(h * 0.22))),
                    0, 0, 360, value, -1)
        cv2.line(canvas, pt(-0.18, 0.4), pt(-0.22, 0.0), value, max(1, int(w * 0.25)))
        cv2.line(canvas, pt(0.18, 0.4), pt(0.22, 0.0), value, max(1, int(w * 0.25)))
    elif obj.category == 'car':
        body = np.array([pt(-0.5, 0.15), pt(0.5, 0.15), pt(0.5, 0.6), pt(-0.5, 0.6)])
        cabin = np.array([pt(-0.3, 0.6), pt(0.28, 0.6), pt(0.15, 1.0), pt(-0.18, 1.0)])
        cv2.fillPoly(canvas, [body, cabin], value)
        for dx in (-0.3, 0.3):
            cv2.circle(canvas, pt(dx, 0.17), max(1, int(h * 0.17)), value, -1)
    elif obj.category == 'bicycle':
        r = max(2, int(h * 0.3))
        for dx in (-0.32, 0.32):
            cv2.circle(canvas, pt(dx, 0.3), r, value, t + 1)
        frame = np.array([pt(-0.32, 0.3), pt(0.0, 0.3), pt(0.12, 0.8), pt(-0.15, 0.8)])
        cv2.polylines(canvas, [frame], True, value, t + 1)
        cv2.line(canvas, pt(0.12, 0.8), pt(0.32, 0.3), value, t + 1)
        cv2.line(canvas, pt(0.1, 0.8), pt(0.18, 1.0), value, t + 1)
    else:  # dog
        cv2.ellipse(canvas, pt(0, 0.6), (max(1, int(w * 0.38)), max(1, int(h * 0.2))),
                    0, 0, 360, value, -1)
        cv2.circle(canvas, pt(0.42, 0.85), max(1, int(h * 0.18)), value, -1)
        for dx in (-0.3, -0.15, 0.15, 0.3):
            cv2.line(canvas, pt(dx, 0.5), pt(dx, 0.0), value, t + 1)
        cv2.line(canvas, pt(-0.38, 0.65), pt(-0.55, 0.9), value, t + 1)


class SyntheticMMRIS:
    """Deterministic generator of MM-RIS-like scenes and rows.

    Args:
        size (int): Side of the square images in pixels. Defaults to 128.
        seed (int): The seed every scene derives from. Defaults to 0.
        same_category_ratio (float): The exact share of scenes that hold at least two objects
            of one category. Defaults to 0.5.
        objects_per_scene (tuple[int, int]): Inclusive range of the number of objects.
            Defaults to (3, 5).
        rows_per_scene (int): At most this many referred objects (rows) per scene.
            Defaults to 3.
    """

    def __init__(self,
                 size: int = 128,
                 seed: int = 0,
                 same_category_ratio: float = 0.5,
                 objects_per_scene: Tuple[int, int] = (3, 5),
                 rows_per_scene: int = 3) -> None:
        if size < 32:
            raise ValueError(f'size must be at least 32 pixels, got {size}')
        if not 0 <= same_category_ratio <= 1:
            raise ValueError(f'same_category_ratio must be in [0, 1], got {same_category_ratio}')
        low, high = objects_per_scene
        if not 2 <= low <= high <= 8:
            raise ValueError(f'objects_per_scene must satisfy 2 <= low <= high <= 8, got '
                             f'{objects_per_scene}')
        self.size = size
        self.seed = seed
        self.same_category_ratio = same_category_ratio
        self.objects_per_scene = (low, high)
        self.rows_per_scene = rows_per_scene

    # ----------------------------------------------------------------- scenes
    def _has_duplicate(self, idx: int) -> bool:
        """Exactly ``same_category_ratio`` of every prefix of scenes (up to rounding)."""
        r = self.same_category_ratio
        return math.floor((idx + 1) * r) > math.floor(idx * r)

    def _sample_objects(self, rng: np.random.Generator, idx: int,
                        lighting: str) -> List[SceneObject]:
        size = self.size
        num = int(rng.integers(self.objects_per_scene[0], self.objects_per_scene[1] + 1))
        names = list(CATEGORIES)
        if self._has_duplicate(idx):
            dup = names[int(rng.integers(len(names)))]
            cats = [dup, dup] + [names[int(i)] for i in rng.integers(len(names), size=num - 2)]
        else:
            # all categories distinct as far as there are categories; beyond that, repeats
            cats = [str(c) for c in rng.permutation(names)][:num]
            cats += [names[int(i)] for i in rng.integers(len(names), size=num - len(cats))]
        objects: List[SceneObject] = []
        min_gap = 0.09 * size
        for k, cat in enumerate(cats):
            for _ in range(50):
                x = float(rng.uniform(0.1, 0.9) * size)
                if all(abs(x - o.x) >= min_gap for o in objects):
                    break
            y = float(rng.uniform(HORIZON + 0.14, 0.97) * size)
            depth = (y / size - HORIZON) / (1 - HORIZON)  # 0 at the horizon, 1 at the bottom
            scale = (0.45 + 0.75 * depth) * float(rng.uniform(0.75, 1.3))
            colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
            warm = bool(rng.uniform() < CATEGORIES[cat]['p_warm'])
            vis_visible = lighting == 'day' or (lighting == 'fog' and depth > 0.45)
            objects.append(SceneObject(k, cat, colour, warm, x, y, scale, vis_visible))
        return objects

    def scene(self, idx: int, split: str = 'train') -> Scene:
        """Render scene ``idx`` of ``split``.

        Args:
            idx (int): Scene index.
            split (str): Split name, part of the seed. Defaults to 'train'.

        Returns:
            Scene: Images, objects (with their visible masks) and tree positions.
        """
        split_key = sum(ord(c) * 31**i for i, c in enumerate(split)) % (2**31)
        rng = np.random.default_rng([self.seed, split_key, idx])
        size = self.size
        weights = np.array([p for _, p in LIGHTING])
        lighting = LIGHTING[int(rng.choice(len(LIGHTING), p=weights / weights.sum()))][0]
        objects = self._sample_objects(rng, idx, lighting)
        trees = [float(rng.uniform(0.05, 0.95) * size)
                 for _ in range(int(rng.integers(1, 3)))]
        horizon = int(HORIZON * size)
        ys = np.arange(size, dtype=np.float32)[:, None] / size

        # VIS: sky gradient, textured ground, a road band, trees, then objects far to near.
        texture = _smooth_noise(rng, size, 16)
        fine = rng.normal(0, 1, (size, size)).astype(np.float32)
        vis = np.empty((size, size, 3), np.float32)
        sky = np.array([120, 165, 225], np.float32) + np.array([60, 40, 10]) * ys[..., None]
        ground = (np.array([95, 120, 70], np.float32) * (1 + 0.15 * texture[..., None]))
        vis[:] = np.where(ys[..., None] * size < horizon, sky, ground)
        road = (ys[:, 0] * size > 0.62 * size) & (ys[:, 0] * size < 0.8 * size)
        vis[road] = np.array([105, 105, 110], np.float32) * (1 + 0.08 * texture[road][..., None])
        ir = np.where(ys * size < horizon, 40.0, 95.0).astype(np.float32) + 12 * texture
        ir[road] += 10
        labels = np.zeros((size, size), np.int16)
        for tx in trees:
            trunk_top, crown_r = int(0.3 * size), int(0.09 * size)
            cv2.rectangle(vis, (int(tx - 0.015 * size), trunk_top), (int(tx + 0.015 * size),
                                                                    horizon + 4),
                          (90, 60, 35), -1)
            cv2.circle(vis, (int(tx), trunk_top), crown_r, (35, 110, 45), -1)
            cv2.rectangle(ir, (int(tx - 0.015 * size), trunk_top),
                          (int(tx + 0.015 * size), horizon + 4), 110.0, -1)
            cv2.circle(ir, (int(tx), trunk_top), crown_r, 105.0, -1)
        obj_ir = {}
        for obj in sorted(objects, key=lambda o: o.y):
            colour = np.array(COLOURS[obj.colour], np.float32)
            layer = np.zeros((size, size), np.uint8)
            _draw_object(layer, obj, 1, size)
            sel = layer.astype(bool)
            shade = 1 + 0.12 * texture[sel] + 0.04 * fine[sel]
            vis[sel] = colour * shade[:, None]
            temp = float(rng.uniform(200, 245) if obj.warm else rng.uniform(12, 28) + 95)
            obj_ir[obj.idx] = temp
            ir[sel] = temp + 6 * texture[sel]
            labels[sel] = obj.idx + 1

        vis += 5 * fine[..., None]
        if lighting == 'night':
            vis = vis * 0.05 + 4 + 3 * rng.normal(0, 1, vis.shape).astype(np.float32)
        elif lighting == 'fog':
            # fog thickens with distance: full at the horizon, light at the bottom
            alpha = np.clip(1.15 - 1.1 * (ys - HORIZON) / (1 - HORIZON), 0.15, 0.92)
            alpha = np.where(ys < HORIZON, 0.92, alpha)[..., None]
            vis = (1 - alpha) * vis + alpha * 200
        ir = cv2.GaussianBlur(ir, (0, 0), 0.6 + size / 256)
        ir += 2.5 * rng.normal(0, 1, ir.shape).astype(np.float32)

        kept = []
        for obj in objects:
            obj.mask = labels == obj.idx + 1
            if obj.area >= max(12, 0.0015 * size * size):
                kept.append(obj)
        return Scene(np.clip(vis, 0, 255).astype(np.uint8), np.clip(ir, 0, 255).astype(np.uint8),
                     lighting, kept, trees)

    # ------------------------------------------------------------ expressions
    def _candidates(self, rng: np.random.Generator, scene: Scene,
                    target: SceneObject) -> List[Tuple[str, List[int], float]]:
        """Descriptions of ``target``: (phrase, ids of the objects it matches, weight)."""
        objs = scene.objects
        cat = target.category
        noun = CATEGORIES[cat]['nouns'][int(rng.integers(len(CATEGORIES[cat]['nouns'])))]
        same = [o for o in objs if o.category == cat]
        out: List[Tuple[str, List[int], float]] = []

        def pick(options: Sequence[str]) -> str:
            return options[int(rng.integers(len(options)))]

        def ids(pred: Callable[[SceneObject], bool]) -> List[int]:
            return [o.idx for o in objs if pred(o)]

        out.append((pick(['the {n}', '{n}']).format(n=noun), ids(lambda o: o.category == cat),
                    0.3))
        if target.vis_visible:
            out.append((pick(['the {c} {n}', '{n} in {c}', 'the {n} that is {c}']).format(
                c=target.colour, n=noun),
                ids(lambda o: o.category == cat and o.colour == target.colour), 1.0))
        temp = pick(['warm', 'hot']) if target.warm else 'cold'
        out.append((pick(['the {t} {n}', 'the {n} that is {t}']).format(t=temp, n=noun),
                    ids(lambda o: o.category == cat and o.warm == target.warm), 1.0))
        for group, prefix in ((same, ''),
                              ([o for o in same if o.warm == target.warm], temp + ' ')):
            if len(group) < 2:
                continue
            order = sorted(group, key=lambda o: o.x)
            rank = order.index(target)
            for side, pos in (('left', rank), ('right', len(order) - 1 - rank)):
                if pos == 0:
                    phrase = pick(['the {p}{n} on the {s}', 'the {s}most {p}{n}',
                                   '{p}{n} on the {s}']).format(p=prefix, n=noun, s=side)
                elif pos < len(ORDINALS):
                    phrase = 'the {o} {p}{n} from the {s}'.format(o=ORDINALS[pos], p=prefix,
                                                                 n=noun, s=side)
                else:
                    continue
                out.append((phrase, [target.idx], 1.0))
        if len(same) >= 2:
            others = [o.area for o in same if o is not target]
            if target.area > 1.6 * max(others):
                out.append((pick(['the bigger {n}', 'the larger {n}', 'the big {n}']).format(
                    n=noun), [target.idx], 1.0))
            elif target.area * 1.6 < min(others):
                out.append((pick(['the smaller {n}', 'the small {n}']).format(n=noun),
                            [target.idx], 1.0))
        if len(scene.trees) == 1:
            tree_x, near = scene.trees[0], 0.12 * self.size
            out.append((pick(['the {n} next to the tree', 'the {n} near the tree',
                              '{n} beside the tree']).format(n=noun),
                        ids(lambda o: o.category == cat and abs(o.x - tree_x) < near), 1.0))
        for anchor in objs:
            a_cat = anchor.category
            if a_cat == cat or sum(o.category == a_cat for o in objs) != 1:
                continue
            a_noun = CATEGORIES[a_cat]['nouns'][0]
            side = 'left' if target.x < anchor.x else 'right'
            phrase = pick(['the {n} to the {s} of the {a}', '{n} {s} of the {a}']).format(
                n=noun, s=side, a=a_noun)
            left = side == 'left'
            out.append((phrase, ids(lambda o: o.category == cat and (o.x < anchor.x) == left),
                        0.8))
        return out

    def describe(self, rng: np.random.Generator, scene: Scene,
                 target: SceneObject) -> Optional[str]:
        """A random expression that matches ``target`` and no other object.

        Args:
            rng (np.random.Generator): Source of the template choices.
            scene (Scene): The rendered scene.
            target (SceneObject): The object to refer to.

        Returns:
            str | None: The expression, or None when no template singles ``target`` out.
        """
        valid = [(p, w) for p, matched, w in self._candidates(rng, scene, target)
                 if matched == [target.idx]]
        if not valid:
            return None
        weights = np.array([w for _, w in valid])
        return valid[int(rng.choice(len(valid), p=weights / weights.sum()))][0]

    def scene_rows(self, idx: int, split: str = 'train') -> List[dict]:
        """Rows of scene ``idx``: one per referred object, with decoded images and masks.

        Args:
            idx (int): Scene index.
            split (str): Split name, part of the seed. Defaults to 'train'.

        Returns:
            list[dict]: ``image_name``, ``vis`` (H, W, 3 RGB), ``ir`` (H, W), ``question``,
            ``mask`` (H, W uint8, 1 = target) and the target's attributes (``category``,
            ``colour``, ``warm``, ``vis_visible``) and the scene's ``lighting``.
        """
        scene = self.scene(idx, split)
        rng = np.random.default_rng([self.seed, 7919, idx, len(split)])
        rows = []
        for k in rng.permutation(len(scene.objects)):
            if len(rows) == self.rows_per_scene:
                break
            target = scene.objects[int(k)]
            text = self.describe(rng, scene, target)
            if text is None:
                continue
            rows.append(dict(image_name=f'syn{self.seed}_{split}_{idx:06d}.png', vis=scene.vis,
                             ir=scene.ir, question=text, mask=target.mask.astype(np.uint8),
                             category=target.category, colour=target.colour,
                             warm=target.warm, vis_visible=target.vis_visible,
                             lighting=scene.lighting))
        return rows

    def iter_rows(self, num_rows: int, split: str = 'train') -> Iterator[dict]:
        """Rows of consecutive scenes of ``split`` until ``num_rows`` are produced.

        Args:
            num_rows (int): Number of rows.
            split (str): Split name, part of the seed. Defaults to 'train'.

        Returns:
            Iterator[dict]: Rows as :meth:`scene_rows` gives them.
        """
        produced, idx = 0, 0
        while produced < num_rows:
            for row in self.scene_rows(idx, split):
                if produced == num_rows:
                    return
                yield row
                produced += 1
            idx += 1


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB (H, W, 3) or gray (H, W) uint8 image (fast, lossless).

    Args:
        image (np.ndarray): The image.

    Returns:
        bytes: The encoded PNG.
    """
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode('.png', image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError('cv2.imencode failed to write a PNG')
    return buf.tobytes()


def make_synthetic_mmris(out_file: str,
                         num_rows: int,
                         size: int = 128,
                         seed: int = 0,
                         split: str = 'train',
                         same_category_ratio: float = 0.5,
                         row_group_size: int = 64) -> str:
    """Write ``num_rows`` synthetic rows to one parquet file in the official MM-RIS schema.

    Small row groups keep random access cheap: the dataset reads one row group per sample.

    Args:
        out_file (str): The parquet file to write (its folder must exist).
        num_rows (int): Number of rows (referring expressions).
        size (int): Side of the square images in pixels. Defaults to 128.
        seed (int): Seed of the whole set. Defaults to 0.
        split (str): Split name, part of the seed, so splits differ. Defaults to 'train'.
        same_category_ratio (float): Share of scenes with two objects of one category.
            Defaults to 0.5.
        row_group_size (int): Maximum rows per parquet row group (groups also close at
            4 MiB, see :class:`MMRISParquetWriter`). Defaults to 64.

    Returns:
        str: ``out_file``.
    """
    if num_rows < 1:
        raise ValueError(f'num_rows must be positive, got {num_rows}')
    if not osp.isdir(osp.dirname(osp.abspath(out_file))):
        raise FileNotFoundError(f'The folder of {out_file!r} does not exist')
    gen = SyntheticMMRIS(size=size, seed=seed, same_category_ratio=same_category_ratio)
    encoded: Dict[str, Tuple[bytes, bytes]] = {}
    with MMRISParquetWriter(out_file, row_group_size) as writer:
        for row in gen.iter_rows(num_rows, split):
            name = row['image_name']
            if name not in encoded:
                encoded.clear()  # rows of one scene are consecutive
                encoded[name] = (encode_png(row['vis']), encode_png(row['ir']))
            writer.write(name, *encoded[name], row['question'], encode_npy(row['mask']))
    return out_file


def make_synthetic_splits(out_dir: str,
                          num_rows: Optional[Dict[str, int]] = None,
                          size: int = 128,
                          seed: int = 0,
                          same_category_ratio: float = 0.5) -> Dict[str, str]:
    """Write ``mm_ris_{split}.parquet`` for every split, named as the official files.

    Args:
        out_dir (str): Existing output folder.
        num_rows (dict, optional): Rows per split. Defaults to None, meaning
            ``dict(train=2000, val=300, test=300)``.
        size (int): Image side in pixels. Defaults to 128.
        seed (int): Seed of the whole set. Defaults to 0.
        same_category_ratio (float): Share of scenes with two objects of one category.
            Defaults to 0.5.

    Returns:
        dict[str, str]: Split name -> written file.
    """
    num_rows = dict(train=2000, val=300, test=300) if num_rows is None else num_rows
    return {split: make_synthetic_mmris(osp.join(out_dir, f'mm_ris_{split}.parquet'), n,
                                        size=size, seed=seed, split=split,
                                        same_category_ratio=same_category_ratio)
            for split, n in num_rows.items()}
