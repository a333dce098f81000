"""One place per variant: the source and paginator registries are derived from the config models, and agree."""

import importlib
from typing import get_args

from sluice.config import Pagination, SourceConfig
from sluice.config.sources import PAGINATOR_CLASSES, SOURCE_KINDS, SOURCE_MODULES
from sluice.sources.http import paginators


def test_every_source_model_names_an_importable_module_with_iter_batches():
    models = get_args(get_args(SourceConfig)[0])
    assert (
        set(SOURCE_KINDS) == {get_args(m.model_fields["kind"].annotation)[0] for m in models} == {"s3", "http", "sql"}
    )
    for kind, module in SOURCE_MODULES.items():
        assert callable(importlib.import_module(module).iter_batches), kind


def test_every_pagination_model_has_its_paginator_class():
    models = get_args(get_args(Pagination)[0])
    styles = {get_args(m.model_fields["style"].annotation)[0] for m in models}
    assert styles == set(PAGINATOR_CLASSES) == set(paginators.PAGINATORS)
    for style, cls in paginators.PAGINATORS.items():
        assert issubclass(cls, paginators.Paginator) and cls.__name__ == PAGINATOR_CLASSES[style]
