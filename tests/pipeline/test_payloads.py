"""An attribution job's product is its payload scripts: they survive the cache byte for byte, and
export writes each only under its own key."""

from __future__ import annotations

import numpy as np
import pytest

from understanding_rl_vision.contract import MapPayload, read_payload, script_text, write_script
from understanding_rl_vision.pipeline.cache import Cache
from understanding_rl_vision.pipeline.payloads import Scripts


def heat(output: int) -> MapPayload:
    rng = np.random.default_rng(output)
    maps = np.where(rng.random((3, 4, 4)) < 0.5, rng.random((3, 4, 4)), 0).astype(np.float32)
    return MapPayload(
        method=1,
        site=0,
        trajectory=2,
        output=output,
        key_prefix="m1",
        positive=maps,
        negative=maps[::-1].copy(),
        totals=(maps - maps[::-1]).sum((1, 2)),
    )


def test_scripts_survive_the_cache_and_export_writes_them_under_their_keys(tmp_path):
    payloads = [heat(0), heat(3)]
    scripts = Scripts({p.key(): script_text(p) for p in payloads}, (4, 4))
    cache = Cache(tmp_path / "cache", "0" * 64)
    cache.save("attribution-x", scripts.to_arrays())
    back = Scripts.from_arrays(cache.load("attribution-x"))
    assert back == scripts
    data = tmp_path / "data"
    for key, text in back.texts.items():
        write_script(data, key, text)
    for payload in payloads:
        read = read_payload(data, payload.key())
        np.testing.assert_allclose(read.positive, payload.positive, atol=payload.positive.max() / 510 + 1e-7)
    with pytest.raises(ValueError, match="not the payload"):
        write_script(data, payloads[0].key(), script_text(payloads[1]))
    assert sorted(p.name for p in data.iterdir()) == sorted(f"{p.key()}.js" for p in payloads)
