"""Fixtures shared by the unit tests, and hypothesis without its per-example deadline: speed is
never a timed test here, and a 2-core machine shared with a running stack can take 400 ms for an
example that takes 40 ms alone (a FlakyFailure, not a finding)."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
from hypothesis import settings

from pipelines import avro

settings.register_profile("seatflow", deadline=None)
settings.load_profile("seatflow")


@pytest.fixture(params=["native", "python"], scope="module")
def codec(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """Each Avro codec in turn (seatflow_native, pipelines.avro.pure), as pipelines.avro's
    AvroDecoder and RecordWriter use it: a codec's tests run against both. The native one is
    skipped where it is not installed (an install without cargo). Module-scoped: hypothesis's
    examples share it, and the tests of one codec run together."""
    try:
        name, module = avro.load_codec(request.param)
    except avro.CodecUnavailableError:
        pytest.skip("seatflow_native is not installed (pip install -e '.[native]' needs cargo)")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(avro, "codec", module)
        patch.setattr(avro, "CODEC_NAME", name)
        yield module
