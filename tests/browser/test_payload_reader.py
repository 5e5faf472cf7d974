"""The page's payload reader (svelte/src/lib/payload.js) in a real Chromium, opened from
file://, against the Python reader of the same files."""

from pathlib import Path

import numpy as np

from understanding_rl_vision.contract import AttributionPayload, read_payload, write_payload
from understanding_rl_vision.reduction import FeatureMaps

LIB = Path(__file__).parents[2] / "svelte" / "src" / "lib"
READER, CONTRACT = LIB / "payload.js", LIB / "contract.js"


def page_html(key: str) -> str:
    """A file:// page that loads one payload the way the interface will and decodes every array."""
    reader = "\n".join(line for line in READER.read_text().splitlines() if not line.startswith("import "))
    module = (CONTRACT.read_text() + reader).replace("export ", "")
    return f"""<!doctype html><html><head><meta charset="utf-8"></head><body><script type="module">
{module}
installReceiver();
window.result = (async () => {{
  const payload = await loadPayload({key!r});
  const out = {{}};
  for (const name of ["positive", "negative", "residual", "totals", "residual_totals"]) {{
    out[name] = Array.from(await decodeArray(payload[name]));
  }}
  out.display_scale = payload.display_scale;
  try {{ await loadPayload("attr-9-9-9"); out.missing = "loaded"; }} catch (e) {{ out.missing = e.message; }}
  return out;
}})();
</script></body></html>"""


def sparse_maps(frames=5, features=3, size=8, seed=0) -> FeatureMaps:
    rng = np.random.default_rng(seed)
    positive = np.where(rng.random((frames, features, size, size)) < 0.3, rng.random((frames, features, size, size)), 0)
    negative = np.where(rng.random(positive.shape) < 0.2, rng.random(positive.shape) * 0.5, 0)
    residual = rng.normal(size=(frames, size, size)) * 0.1
    totals = (positive - negative).sum((2, 3))
    return FeatureMaps(
        positive=positive.astype(np.float32),
        negative=negative.astype(np.float32),
        residual=residual.astype(np.float32),
        totals=totals.astype(np.float32),
        residual_totals=residual.sum((1, 2)).astype(np.float32),
        scale=0.9,
    )


def test_page_reader_decodes_payloads_from_file_urls_like_the_python_reader(page, console_errors, tmp_path):
    maps = sparse_maps()
    payload = AttributionPayload(
        layer=0,
        trajectory=1,
        output=2,
        positive=maps.positive,
        negative=maps.negative,
        residual=maps.residual,
        totals=maps.totals,
        residual_totals=maps.residual_totals,
        display_scale=maps.scale,
    )
    data = tmp_path / "data"
    data.mkdir()
    write_payload(data, payload.key(), payload)
    (tmp_path / "index.html").write_text(page_html(payload.key()))

    page.goto((tmp_path / "index.html").as_uri())
    result = page.evaluate("window.result")

    expected = read_payload(data, payload.key())
    for name in ("positive", "negative", "residual", "totals", "residual_totals"):
        decoded = np.array(result[name], dtype=np.float32).reshape(getattr(expected, name).shape)
        np.testing.assert_allclose(decoded, getattr(expected, name), rtol=1e-6, atol=1e-7, err_msg=name)
    assert result["display_scale"] == maps.scale
    # The deflated maps really went through the browser's DecompressionStream.
    assert '"compression":"deflate"' in (data / f"{payload.key()}.js").read_text().replace(" ", "")
    assert "could not load" in result["missing"]
    assert console_errors == ["Failed to load resource: net::ERR_FILE_NOT_FOUND"]  # the missing payload, on purpose
    console_errors.clear()
