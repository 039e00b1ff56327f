"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from pipelines import avro


@pytest.fixture(params=["native", "python"], scope="module")
def codec(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """Each Avro codec in turn (seatflow_native, pipelines.avro_pure), as pipelines.avro's
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
