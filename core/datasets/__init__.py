"""Corpora and datasets: built-in ones, the book's real ones (downloaded on request), and user uploads.

- :mod:`~core.datasets.registry`  ``DATASETS``, ``DatasetInfo``, ``data_dir()``, ``path_of()``, ``is_available()``
- :mod:`~core.datasets.fetch`  ``download()``: stream, resume, retry, sha256, safe zip extraction
- :mod:`~core.datasets.loaders`   ``load_corpus``, ``load_classification``, ``balance``, ``split``,
  ``label_mapping``, ``load_instructions``, ``split_instructions`` (the book's splits)
- :mod:`~core.datasets.uploads`   ``parse_text_upload``, ``parse_table_upload``, ``parse_instruction_upload``

Example:
    >>> from core.datasets import load_classification, balance, split
    >>> train, val, test = split(balance(load_classification("builtin-spam")))
"""

from core.datasets.fetch import download, read_manifest, sha256_of, verify_cached
from core.datasets.loaders import (
    balance,
    label_mapping,
    load_classification,
    load_corpus,
    load_instructions,
    split,
    split_instructions,
)
from core.datasets.registry import DATASETS, DatasetInfo, data_dir, get_info, is_available, list_datasets, path_of
from core.datasets.uploads import parse_instruction_upload, parse_table_upload, parse_text_upload

__all__ = [
    "DATASETS", "DatasetInfo", "balance", "data_dir", "download", "get_info", "is_available", "label_mapping",
    "list_datasets", "load_classification", "load_corpus", "load_instructions", "parse_instruction_upload",
    "parse_table_upload", "parse_text_upload", "path_of", "read_manifest", "sha256_of", "split",
    "split_instructions", "verify_cached",
]
