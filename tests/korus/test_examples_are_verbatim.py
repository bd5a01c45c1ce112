"""The documented Korus examples the tests read are the shared ones, byte for byte.

`tests/support/korus_examples/` is a copy (the tests must run from a clone alone); when
the shared folder sits beside the checkout, as on a developer's machine and in CI, the
copy must not drift from it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.shapes import EXAMPLES_DIR

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "korus-examples"


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/korus-examples beside the checkout")
def test_the_vendored_examples_are_the_shared_ones_byte_for_byte() -> None:
    shared = {p.name: p.read_bytes() for p in SHARED.glob("*.json")}
    vendored = {p.name: p.read_bytes() for p in EXAMPLES_DIR.glob("*.json")}

    assert shared, "the shared folder holds no examples"
    assert vendored == shared
