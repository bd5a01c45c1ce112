"""The pipeline tests run once per sandbox shape mode: the documented shapes, and the
varied ones (`[]`/`null`/missing empty objects, `hydra:` prefixes, other offsets,
unknown fields). SANDBOX_SHAPES=documented|varied runs one mode only."""

from __future__ import annotations

import os

import pytest

from worker.sandbox.shapes import SHAPES

_ONLY = os.environ.get("SANDBOX_SHAPES")


@pytest.fixture(scope="module", params=[_ONLY] if _ONLY else list(SHAPES))
def sandbox_shapes(request: pytest.FixtureRequest) -> str:
    return str(request.param)
