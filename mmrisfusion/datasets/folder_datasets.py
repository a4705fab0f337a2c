"""Image-folder datasets: users' own RIS data, and fusion-only IR/VIS pairs."""
import json
import os
import os.path as osp
from typing import Any, List, Optional

from mmrisfusion.registry import DATASETS

from .base_ris_dataset import BaseRISDataset, InvalidSampleError

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


@DATASETS.register_module()
class RISFolderDataset(BaseRISDataset):
    """Referring segmentation data laid out as folders plus a JSON-lines file.

    Layout under ``data_root``::

        vi/IMAGE          visible image (any format OpenCV/Pillow reads)
        ir/IMAGE          infrared image of the same size, same file name
        mask/NAME.png     the referred object's mask (foreground = value > 0);
                          NAME is the stem of the line's ``name``
        refs.jsonl        one JSON object per referred object

    Each line: ``{"name": "00001.png", "expressions": ["the person on the left", ...]}``;
    ``"expression": "..."`` is accepted for a single one, and ``"image": "00001.png"`` names
    the image pair when several referred objects share it (then ``name`` only names the
    mask). Each expression is one sample, as in RefCOCO evaluation.
    ``tools/dataset_converters/mm_ris.py`` writes this layout from MM-RIS parquet and back.

    Args:
        ann_file (str): The JSON-lines file, relative to ``data_root``.
            Defaults to 'refs.jsonl'.
        data_root (str): The dataset folder. Defaults to ''.
        data_prefix (dict, optional): Sub-folders ``vis``, ``ir``, ``mask``. Defaults to
            None, meaning ``dict(vis='vi', ir='ir', mask='mask')``.
        skip_invalid (bool): Log, count and drop invalid lines instead of raising.
            Defaults to False.
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset` (``pipeline``,
            ``test_mode``, ``lazy_init``, ``serialize_data``, ``indices``, ...).
    """

    METAINFO = dict(classes=('background', 'object'), palette=[[0, 0, 0], [255, 255, 255]])

    def __init__(self,
                 ann_file: str = 'refs.jsonl',
                 data_root: str = '',
                 data_prefix: Optional[dict] = None,
                 skip_invalid: bool = False,
                 **kwargs: Any) -> None:
        prefix = dict(vis='vi', ir='ir', mask='mask')
        prefix.update(data_prefix or {})
        super().__init__(skip_invalid=skip_invalid, ann_file=ann_file, data_root=data_root,
                         data_prefix=prefix, **kwargs)

    def _parse_line(self, line: str, source: str) -> List[dict]:
        """The samples of one JSON line, or raise :class:`InvalidSampleError`."""
        try:
            ref = json.loads(line)
        except json.JSONDecodeError as error:
            raise InvalidSampleError(source, None, f'not valid JSON ({error})') from error
        if not isinstance(ref, dict) or not isinstance(ref.get('name'), str) \
                or not ref['name'].strip():
            raise InvalidSampleError(source, None, 'expected an object with a non-empty '
                                     f'string "name", got {line.strip()[:80]!r}')
        name = ref['name']
        image = ref.get('image', name)
        if 'expressions' in ref:
            texts = ref['expressions']
        elif 'expression' in ref:
            texts = [ref['expression']]
        else:
            raise InvalidSampleError(source, image, 'no "expressions" (a list of strings) '
                                     'or "expression" (a string)')
        if not isinstance(texts, list) or not texts or not all(
                isinstance(t, str) and t.strip() for t in texts):
            raise InvalidSampleError(source, image, f'expressions are {texts!r}; expected '
                                     'a non-empty list of non-empty strings')
        paths = dict(vis_path=osp.join(self.data_prefix['vis'], image),
                     ir_path=osp.join(self.data_prefix['ir'], image),
                     seg_map_path=osp.join(self.data_prefix['mask'],
                                           osp.splitext(name)[0] + '.png'))
        for key, path in paths.items():
            if not osp.isfile(path):
                raise InvalidSampleError(source, image, f'{key.split("_")[0]} file {path!r} '
                                         'does not exist')
        return [dict(img_name=image, text=text, source=f'{source} expression {k}', **paths)
                for k, text in enumerate(texts)]

    def load_data_list(self) -> List[dict]:
        """One sample per expression of every line of ``ann_file``.

        Returns:
            list[dict]: ``img_name``, ``text``, ``source``, ``vis_path``, ``ir_path``,
            ``seg_map_path``.
        """
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'RISFolderDataset: the annotation file {self.ann_file!r} '
                                    'does not exist (JSON lines: {"name": ..., '
                                    '"expressions": [...]})')
        base = osp.basename(self.ann_file)
        data_list = []
        with open(self.ann_file, encoding='utf-8') as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    data_list.extend(self._parse_line(line, f'{base}:line {number}'))
                except InvalidSampleError as error:
                    self.record_invalid(error)
        return self.require_samples(data_list, self.ann_file, 'expected JSON lines with "name" '
                                    'and "expressions"')


@DATASETS.register_module()
class IVIFFolderDataset(BaseRISDataset):
    """Fusion-only IR/VIS pairs without masks or text, paired by file name.

    Layout under ``data_root``: ``vi/NAME`` and ``ir/NAME`` (as in TNO and RoadScene). An
    optional ``ann_file`` lists the names to use, one per line (e.g. RoadScene's
    ``test50.txt``); otherwise every image file in ``vi/`` is used, sorted by name. A name
    without its partner in ``ir/`` is an error (or a logged skip with ``skip_invalid``).

    Args:
        data_root (str): The dataset folder. Defaults to ''.
        ann_file (str): Optional file listing the names, relative to ``data_root``.
            Defaults to '' (every image in ``vi/``).
        data_prefix (dict, optional): Sub-folders ``vis`` and ``ir``. Defaults to None,
            meaning ``dict(vis='vi', ir='ir')``.
        skip_invalid (bool): Log, count and drop unpaired names instead of raising.
            Defaults to False.
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = dict(task='ivif')

    def __init__(self,
                 data_root: str = '',
                 ann_file: str = '',
                 data_prefix: Optional[dict] = None,
                 skip_invalid: bool = False,
                 **kwargs: Any) -> None:
        prefix = dict(vis='vi', ir='ir')
        prefix.update(data_prefix or {})
        super().__init__(skip_invalid=skip_invalid, ann_file=ann_file, data_root=data_root,
                         data_prefix=prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Pairs ``vi/NAME`` and ``ir/NAME``.

        Returns:
            list[dict]: ``img_name``, ``source``, ``vis_path``, ``ir_path``.
        """
        vis_dir, ir_dir = self.data_prefix['vis'], self.data_prefix['ir']
        for folder in (vis_dir, ir_dir):
            if not osp.isdir(folder):
                raise FileNotFoundError(f'IVIFFolderDataset: the folder {folder!r} does not '
                                        'exist (expected vi/ and ir/ under data_root)')
        if self.ann_file:
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f'IVIFFolderDataset: the name list {self.ann_file!r} '
                                        'does not exist')
            with open(self.ann_file, encoding='utf-8') as f:
                names = [(line.strip(), f'{osp.basename(self.ann_file)}:line {n}')
                         for n, line in enumerate(f, 1) if line.strip()]
        else:
            names = [(n, osp.join(vis_dir, n)) for n in sorted(os.listdir(vis_dir))
                     if n.lower().endswith(IMG_EXTENSIONS)]
        data_list = []
        for name, source in names:
            paths = dict(vis_path=osp.join(vis_dir, name), ir_path=osp.join(ir_dir, name))
            missing = [p for p in paths.values() if not osp.isfile(p)]
            if missing:
                self.record_invalid(InvalidSampleError(
                    source, name, f'{missing} does not exist; expected a VIS and an IR image '
                    'of this name'))
                continue
            data_list.append(dict(img_name=name, source=source, **paths))
        return self.require_samples(data_list, vis_dir, 'expected image pairs of one name in '
                                    'the VIS and IR folders')
