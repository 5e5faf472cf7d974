"""Payload files: written, read back as the page reads them, and described by the contract."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from understanding_rl_vision.advantages import Bookmark as AdvantageBookmark
from understanding_rl_vision.advantages import Bookmarks
from understanding_rl_vision.contract import (
    AttributionPayload,
    Bookmark,
    FeatureInfo,
    FeaturePayload,
    LayerInfo,
    Manifest,
    Popup,
    TrajectoryPayload,
    attribution_key,
    bookmarks_from,
    check_against_manifest,
    encode_array,
    feature_key,
    javascript_contract,
    json_schema,
    read_image,
    read_manifest,
    read_payload,
    read_raw,
    read_sprite,
    read_sprites,
    trajectory_key,
    write_feature,
    write_manifest,
    write_observations,
    write_payload,
    write_trajectory,
    writer,
)
from understanding_rl_vision.contract.contract import record_types
from understanding_rl_vision.contract.schema import KEY_TEMPLATES, PAYLOAD_TYPES, array_spec
from understanding_rl_vision.errors import UserError
from understanding_rl_vision.feature_vis import dataset_examples

RNG = np.random.default_rng(0)
PREFIX = "window.__rlv_receive("


def manifest(observations=None, lengths=(5, 1)) -> Manifest:
    features = tuple(FeatureInfo(name=f"feature {i + 1}", color=f"#{i:02x}80ff") for i in range(3))
    return Manifest(
        env_id="coinrun",
        agent="demo-agent",
        action_names=("LEFT", "RIGHT", "UP", "LEFT+UP"),
        action_groups={"LEFT": (0, 3), "UP": (2, 3)},
        outputs=("value", "logit:LEFT+UP", "group:LEFT"),
        layers=(LayerInfo(name="base.block2", label="2b", shape=(32, 4, 3), features=features),),
        default_layer=0,
        trajectory_lengths=lengths,
        observation_size=(64, 64),
        fps=12.5,
        bookmarks=(
            Bookmark(kind="high", trajectory=0, frame=4, advantage=1.5),
            Bookmark(kind="low", trajectory=1, frame=0, advantage=-2.0),
        ),
        observations=observations,
        action_outputs="logits",
    )


def attribution(n: int, k: int = 3, h: int = 4, w: int = 3, **keys) -> AttributionPayload:
    signed = RNG.standard_normal((n, k, h, w)) * (RNG.random((n, k, h, w)) < 0.4)
    residual = RNG.standard_normal((n, h, w))
    return AttributionPayload(
        layer=keys.get("layer", 0),
        trajectory=keys.get("trajectory", 1),
        output=keys.get("output", 2),
        positive=np.maximum(signed, 0),
        negative=np.maximum(-signed, 0),
        residual=residual,
        totals=signed.sum((2, 3)),
        residual_totals=residual.sum((1, 2)),
        display_scale=0.75,
        memory_totals=keys.get("memory_totals"),
    )


def trajectory_arrays(n: int, actions: int = 4) -> dict[str, np.ndarray]:
    return {
        "rewards": RNG.random(n).astype(np.float32) * (RNG.random(n) < 0.2),
        "firsts": np.arange(n) % 3 == 0,
        "actions": RNG.integers(0, actions, n),
        "values": RNG.standard_normal(n),
        "logits": RNG.standard_normal((n, actions)),
        "advantages": RNG.standard_normal(n).astype(np.float32),
    }


def images(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def assert_quantised_close(back: np.ndarray, original: np.ndarray) -> None:
    scale = np.abs(original).max() / (255 if original.min() >= 0 else 127)
    assert back.dtype == np.float32 and back.shape == original.shape
    assert np.abs(back - original).max() <= scale / 2 * (1 + 1e-5) + 1e-12


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("with_observations", [False, True])
def test_manifest_round_trip(tmp_path, with_observations):
    observations = images(70, 8, 6, 3)
    sprites = write_observations(tmp_path, observations) if with_observations else None
    original = manifest(sprites)
    write_manifest(tmp_path, original)
    back = read_manifest(tmp_path)
    assert back == original
    if with_observations:
        assert len(back.observations.sheets) == 2  # 64 a sheet, loaded lazily
        assert [p.name for p in sorted(tmp_path.glob("obs-*.png"))] == ["obs-0.png", "obs-1.png"]
        np.testing.assert_array_equal(read_sprites(tmp_path, back.observations), observations)  # across sheets


@pytest.mark.parametrize("n", [1, 9])
def test_trajectory_round_trip(tmp_path, n):
    frames = images(n, 10, 7, 3)
    arrays = trajectory_arrays(n)
    written = write_trajectory(tmp_path, 3, frames=frames, **arrays)
    back = read_payload(tmp_path, trajectory_key(3))
    assert isinstance(back, TrajectoryPayload) and back.trajectory == 3
    assert back.frames == written.frames
    for name, value in arrays.items():
        spec = array_spec(TrajectoryPayload.__dataclass_fields__[name])
        assert getattr(back, name).dtype == np.dtype(spec.logical)
        np.testing.assert_array_equal(getattr(back, name), value.astype(spec.logical))
    for i in range(n):
        np.testing.assert_array_equal(read_sprite(tmp_path, back.frames, i), frames[i])
    np.testing.assert_array_equal(read_sprites(tmp_path, back.frames), frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["traj-3-0.png", "traj-3.js"]


@pytest.mark.parametrize("n", [1, 6])
def test_attribution_round_trip(tmp_path, n):
    original = attribution(n)
    key = attribution_key(0, 1, 2)
    assert write_payload(tmp_path, key, original) == tmp_path / "attr-0-1-2.js"
    back = read_payload(tmp_path, key)
    assert isinstance(back, AttributionPayload)
    assert (back.layer, back.trajectory, back.output, back.display_scale) == (0, 1, 2, 0.75)
    for name in ("positive", "negative", "residual"):
        assert_quantised_close(getattr(back, name), getattr(original, name))
    np.testing.assert_array_equal(back.totals, original.totals)  # float32, exact
    np.testing.assert_array_equal(back.residual_totals, original.residual_totals)
    raw = read_raw(tmp_path, key)
    dtypes = [raw[m]["dtype"] for m in ("positive", "negative", "residual")]
    assert dtypes == ["uint8", "uint8", "int8"]


def test_memory_totals_round_trip(tmp_path):
    """A recurrent agent's attribution to its incoming state: one unquantised float32 per frame."""
    memory = RNG.standard_normal(5).astype(np.float32)
    original = dataclasses.replace(attribution(5), memory_totals=memory)
    write_payload(tmp_path, original.key(), original)
    back = read_payload(tmp_path, original.key())
    np.testing.assert_array_equal(back.memory_totals, memory)  # exact
    assert back.memory_totals.dtype == np.float32 and not back.memory_totals.flags.writeable
    raw = read_raw(tmp_path, original.key())
    assert list(raw)[-1] == "memory_totals"
    assert (raw["memory_totals"]["dtype"], raw["memory_totals"]["shape"], raw["memory_totals"]["scale"]) == (
        "float32",
        [5],
        1.0,
    )
    check_against_manifest(manifest(lengths=(5, 5)), original)
    # A feed-forward payload reads back without it.
    plain = attribution(5, trajectory=0)
    write_payload(tmp_path, plain.key(), plain)
    assert read_payload(tmp_path, plain.key()).memory_totals is None
    # null is not a way to say "absent".
    text = (tmp_path / f"{original.key()}.js").read_text()
    start = text.index('"memory_totals":')
    (tmp_path / f"{original.key()}.js").write_text(text[:start] + '"memory_totals":null});\n')
    with pytest.raises(UserError):
        read_payload(tmp_path, original.key())


def _format_1_text(payload: AttributionPayload) -> str:
    """The script a format-1 writer (no optional fields) makes of ``payload``, built by hand."""
    obj: dict = {"kind": "attribution"}
    by_name = {f.name: f for f in dataclasses.fields(AttributionPayload)}
    for name in FORMAT_1_ATTRIBUTION_FIELDS:
        spec, value = array_spec(by_name[name]), getattr(payload, name)
        obj[name] = encode_array(value, spec) if spec else value
    return f"{PREFIX}{json.dumps(payload.key())},{json.dumps(obj, separators=(',', ':'))});\n"


FORMAT_1_ATTRIBUTION_FIELDS = (
    "layer",
    "trajectory",
    "output",
    "positive",
    "negative",
    "residual",
    "totals",
    "residual_totals",
    "display_scale",
)


def test_feed_forward_attribution_keeps_its_bytes(tmp_path):
    """Without memory totals (a feed-forward agent) the file is byte for byte what it was before the
    field existed; with them, the same bytes plus the field at the end."""
    plain = attribution(4)
    assert plain.memory_totals is None
    path = write_payload(tmp_path, plain.key(), plain)
    assert path.read_bytes() == _format_1_text(plain).encode("ascii")
    assert b"memory" not in path.read_bytes()

    recurrent = tmp_path / "recurrent"
    recurrent.mkdir()
    memory = dataclasses.replace(plain, memory_totals=np.linspace(-1, 1, 4))
    after = write_payload(recurrent, memory.key(), memory).read_text()
    head = _format_1_text(plain)[: -len("});\n")]
    assert after.startswith(head + ',"memory_totals":{"dtype":"float32","shape":[4],') and after.endswith("});\n")


def test_signed_residual_keeps_sign_through_files(tmp_path):
    original = attribution(4)
    write_payload(tmp_path, original.key(), original)
    back = read_payload(tmp_path, original.key()).residual
    scale = np.abs(original.residual).max() / 127
    assert (back * original.residual >= 0).all()
    big = np.abs(original.residual) > scale / 2 * (1 + 1e-6)
    np.testing.assert_array_equal(np.sign(back[big]), np.sign(original.residual[big]))


def test_all_zero_attribution(tmp_path):
    zeros = np.zeros((2, 3, 4, 3))
    payload = AttributionPayload(
        layer=0,
        trajectory=0,
        output=0,
        positive=zeros,
        negative=zeros,
        residual=zeros[:, 0],
        totals=zeros[:, :, 0, 0],
        residual_totals=zeros[:, 0, 0, 0],
        display_scale=0.0,
    )
    with np.errstate(all="raise"):
        write_payload(tmp_path, payload.key(), payload)
        back = read_payload(tmp_path, payload.key())
    assert read_raw(tmp_path, payload.key())["positive"]["scale"] == 0.0
    for name in ("positive", "negative", "residual", "totals", "residual_totals"):
        assert not getattr(back, name).any() and np.isfinite(getattr(back, name)).all()


def test_float64_non_contiguous_maps(tmp_path):
    base = RNG.random((3, 5, 4, 6))
    positive = base.transpose(0, 1, 3, 2)[:, ::2]  # (3, 3, 6, 4) float64 view
    payload = AttributionPayload(
        layer=1,
        trajectory=0,
        output=0,
        positive=positive,
        negative=positive[::-1],
        residual=positive[:, 0] - 0.5,
        totals=positive.sum((2, 3)),
        residual_totals=(positive[:, 0] - 0.5).sum((1, 2)),
        display_scale=1.0,
    )
    write_payload(tmp_path, payload.key(), payload)
    back = read_payload(tmp_path, payload.key())
    assert_quantised_close(back.positive, positive)
    assert_quantised_close(back.negative, positive[::-1])
    assert_quantised_close(back.residual, positive[:, 0] - 0.5)


def test_feature_round_trip(tmp_path):
    thumbnail = images(12, 12, 3)
    observations, scores = images(70, 32, 48, 3), RNG.random((70, 8, 12), dtype=np.float32)
    popups = [dataset_examples.popup(observations, scores, e, d) for e, d in [(1, 0.25), (2, 0.5), (4, 2.0)]]
    write_feature(tmp_path, 0, 2, thumbnail=thumbnail, popups=popups)
    back = read_payload(tmp_path, feature_key(0, 2))
    assert isinstance(back, FeaturePayload) and (back.layer, back.feature) == (0, 2)
    np.testing.assert_array_equal(read_image(tmp_path, back.thumbnail), thumbnail)
    for popup, original in zip(back.popups, popups, strict=True):
        assert (popup.expand_mult, popup.subdiv_mult) == (original.expand_mult, original.subdiv_mult)
        np.testing.assert_array_equal(read_image(tmp_path, popup.image), original.image)
        np.testing.assert_array_equal(popup.grid, original.index_grid)
        # non-square layer: Gy != Gx, and the patch boxes are the ones the mosaic was cut with
        assert popup.grid.shape == (len(popup.tops), len(popup.lefts))
        assert (popup.patch_height, popup.patch_width) == original.cell_size
        np.testing.assert_array_equal(popup.tops, original.tops)
        np.testing.assert_array_equal(popup.lefts, original.lefts)
        assert popup.grid.dtype == np.int32


def test_observation_set_images_retrievable(tmp_path):
    observations = images(130, 9, 9, 3)
    sprites = write_observations(tmp_path, observations)
    assert sprites.per_sheet == 64 and len(sprites.sheets) == 3
    for i in (0, 63, 64, 129):
        np.testing.assert_array_equal(read_sprite(tmp_path, sprites, i), observations[i])


# ---------------------------------------------------------------------------- the envelope


def test_envelope_is_one_receive_call_with_valid_json(tmp_path):
    payload = attribution(2)
    path = write_payload(tmp_path, payload.key(), payload)
    text = path.read_text(encoding="ascii")  # pure ASCII: no encoding trouble from file://
    assert text.startswith(PREFIX) and text.endswith(");\n") and text.count("\n") == 1
    key, obj = json.loads("[" + text[len(PREFIX) : -len(");\n")] + "]")
    assert key == "attr-0-1-2" and obj["kind"] == "attribution"
    assert set(obj["positive"]) == {"dtype", "shape", "scale", "compression", "data"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "console.log(1)",
        PREFIX + '"manifest",{}',
        PREFIX + '"manifest",{});alert(1);',
        PREFIX + '"manifest" {});',
        PREFIX + '"other",{"kind":"manifest"});',
    ],
)
def test_reader_rejects_malformed_scripts(tmp_path, text):
    (tmp_path / "manifest.js").write_text(text)
    with pytest.raises(UserError):
        read_payload(tmp_path, "manifest")


def test_reader_rejects_wrong_kind_fields_and_version(tmp_path):
    write_manifest(tmp_path, manifest())
    path = tmp_path / "manifest.js"
    good = path.read_text()
    obj = json.loads("[" + good[len(PREFIX) : -3] + "]")[1]
    for broken in (
        {**obj, "kind": "feature"},
        {**obj, "format_version": 999},
        {**obj, "extra": 1},
        {k: v for k, v in obj.items() if k != "fps"},
        {**obj, "default_layer": "0"},
        {**obj, "default_layer": 5},
    ):
        path.write_text(f'{PREFIX}"manifest",{json.dumps(broken)});\n')
        with pytest.raises(UserError):
            read_payload(tmp_path, "manifest")
    with pytest.raises(UserError, match="missing"):
        read_payload(tmp_path, "attr-0-0-0")


# ---------------------------------------------------------------------------- keys & atomicity


@pytest.mark.parametrize(
    "key", ["../x", "a/b", "", ".hidden", "x.js", "a b", "con", "NUL", "x" * 101, "-lead", "caf\u00e9", "a\\b", None]
)
def test_bad_keys_are_user_errors(tmp_path, key):
    with pytest.raises(UserError):
        writer.check_key(key)
    with pytest.raises(UserError):
        write_payload(tmp_path, key, manifest())
    with pytest.raises(UserError):
        read_payload(tmp_path, key)
    with pytest.raises(UserError):
        writer.write_image(tmp_path, key, images(2, 2, 3))
    assert list(tmp_path.iterdir()) == []


def test_key_must_match_the_payload(tmp_path):
    with pytest.raises(ValueError, match="attr-0-1-2"):
        write_payload(tmp_path, "attr-0-0-0", attribution(1))
    with pytest.raises(ValueError):
        attribution_key(-1, 0, 0)
    assert [trajectory_key(7), feature_key(2, 5)] == ["traj-7", "feat-2-5"]


class Interrupted(Exception):
    pass


def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    old = manifest()
    write_manifest(tmp_path, old)
    before = (tmp_path / "manifest.js").read_bytes()

    class FailingEncoder:
        def iterencode(self, obj):
            yield '{"kind":"attribution","positive":'
            raise Interrupted("disk pulled out mid-write")

    monkeypatch.setattr(writer, "_encoder", FailingEncoder())
    payload = attribution(3)
    with pytest.raises(Interrupted):
        write_payload(tmp_path, payload.key(), payload)
    with pytest.raises(Interrupted):
        write_manifest(tmp_path, manifest(lengths=(7, 1)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.js"]  # no temp files left
    assert (tmp_path / "manifest.js").read_bytes() == before
    assert read_manifest(tmp_path) == old


# ---------------------------------------------------------------------------- validation


def test_payloads_are_frozen_with_read_only_arrays():
    payload = attribution(2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        payload.layer = 3
    with pytest.raises(ValueError):
        payload.positive[0, 0, 0, 0] = 1.0


def test_inconsistent_shapes_and_values_are_refused():
    good = attribution(3)
    fields = {f.name: getattr(good, f.name) for f in dataclasses.fields(good)}
    for bad in (
        {"residual": good.residual[:2]},
        {"negative": good.negative[:, :2]},
        {"positive": -good.positive - 1},
        {"totals": np.full((3, 3), np.nan)},
        {"positive": good.positive[0]},
        {"display_scale": float("inf")},
        {"memory_totals": np.zeros(2)},
        {"memory_totals": np.zeros((3, 1))},
        {"memory_totals": np.full(3, np.inf)},
    ):
        with pytest.raises(ValueError):
            AttributionPayload(**{**fields, **bad})
    with pytest.raises(ValueError):
        FeatureInfo(name="f", color="red")
    with pytest.raises(ValueError):
        dataclasses.replace(manifest(), default_layer=1)
    with pytest.raises(ValueError):
        dataclasses.replace(manifest(), action_groups={"X": (9,)})
    with pytest.raises(ValueError):
        manifest(lengths=(4, 1))  # the high bookmark is frame 4


def test_payloads_checked_against_the_manifest(tmp_path):
    sprites = write_observations(tmp_path, images(10, 4, 4, 3))
    m = manifest(sprites)  # layer 0: 3 features of 4 x 3; trajectories of 5 and 1 frames
    grid = np.full((2, 2), 9)
    feature = FeaturePayload(layer=0, feature=2, thumbnail="t.png", popups=())
    good = [
        attribution(5, trajectory=0),
        attribution(1, trajectory=1),
        feature,
        TrajectoryPayload(
            trajectory=1,
            frames=dataclasses.replace(sprites, count=1, sheets=sprites.sheets[:1]),
            **trajectory_arrays(1),
        ),
    ]
    for payload in good:
        check_against_manifest(m, payload)
    popup = Popup(
        expand_mult=1,
        subdiv_mult=1.0,
        image="p.png",
        grid=grid + 1,
        patch_height=2,
        patch_width=2,
        tops=np.zeros(len(grid), np.int32),
        lefts=np.zeros(grid.shape[1], np.int32),
    )
    bad = [
        attribution(4, trajectory=0),
        attribution(5, trajectory=0, output=3),
        attribution(5, k=2, trajectory=0),
        attribution(5, h=5, trajectory=0),
        attribution(1, trajectory=2),
        attribution(1, trajectory=1, layer=1),
        dataclasses.replace(feature, feature=3),
        dataclasses.replace(feature, popups=(popup,)),
    ]
    for payload in bad:
        with pytest.raises(UserError, match="disagrees"):
            check_against_manifest(m, payload)


def test_bookmarks_from_advantages():
    found = Bookmarks(high=(AdvantageBookmark(0, 3, 2.5),), low=(AdvantageBookmark(1, 0, -1.0),))
    assert bookmarks_from(found) == (
        Bookmark(kind="high", trajectory=0, frame=3, advantage=2.5),
        Bookmark(kind="low", trajectory=1, frame=0, advantage=-1.0),
    )


# ---------------------------------------------------------------------------- the contract


def test_json_schema_and_javascript_contract_mention_every_field():
    schema, js = json_schema(), javascript_contract()
    classes = record_types()
    assert set(PAYLOAD_TYPES) <= set(classes)
    for cls in classes:
        props = schema["$defs"][cls.__name__]["properties"]
        block = re.search(rf"@typedef {{object}} {cls.__name__}\n(.*?)\n \*/", js, re.DOTALL)
        assert block, cls.__name__
        declared = re.findall(r"^ \* @property {[^}]+} \[?(\w+)\]?", block.group(1), re.MULTILINE)
        names = [f.name for f in dataclasses.fields(cls)]
        if cls in PAYLOAD_TYPES:
            names = ["kind", *names]
            assert props["kind"] == {"const": cls.KIND}
        assert list(props) == names and declared == names
        optional = {f.name for f in dataclasses.fields(cls) if f.metadata.get("optional")}
        assert schema["$defs"][cls.__name__]["required"] == [n for n in names if n not in optional]


def test_the_page_runs_the_current_contract():
    """svelte/src/lib/contract.js is generated; a schema change without regenerating it fails here
    (regenerate: python -m understanding_rl_vision.contract > svelte/src/lib/contract.js)."""
    committed = Path(__file__).parents[2] / "svelte" / "src" / "lib" / "contract.js"
    assert committed.read_text() == javascript_contract()
    for kind, template in KEY_TEMPLATES.items():
        params = re.findall(r"{(\w+)}", template)
        assert f"  {kind}: ({', '.join(params)}) => `" in committed.read_text()


def _check(schema: dict, node: dict, value) -> None:
    """A small validator for the subset of JSON Schema the contract uses."""
    if "$ref" in node:
        _check(schema, schema["$defs"][node["$ref"].split("/")[-1]], value)
    if "anyOf" in node:
        assert value is None or any(s.get("type") != "null" for s in node["anyOf"])
        if value is not None:
            _check(schema, next(s for s in node["anyOf"] if s.get("type") != "null"), value)
        return
    kind = node.get("type")
    if kind == "object" and "properties" in node and "required" in node:
        assert set(node["required"]) <= set(value) <= set(node["properties"]), value.keys()
        for name, sub in node["properties"].items():
            if name in value:
                _check(schema, sub, value[name])
    elif kind == "object":
        for sub in value.values():
            _check(schema, node["additionalProperties"], sub)
    elif kind == "array":
        for i, item in enumerate(value):
            _check(schema, node["prefixItems"][i] if "prefixItems" in node else node["items"], item)
    elif kind is not None:
        types = {"integer": int, "number": (int, float), "string": str, "boolean": bool}
        assert isinstance(value, types[kind]) and not (kind != "boolean" and type(value) is bool)
    if "const" in node:
        assert value == node["const"]
    if "enum" in node:
        assert value in node["enum"]
    if "pattern" in node:
        assert re.match(node["pattern"], value)


def test_written_payloads_meet_the_json_schema(tmp_path):
    schema = json_schema()
    write_manifest(tmp_path, manifest(write_observations(tmp_path, images(3, 4, 4, 3))))
    write_trajectory(tmp_path, 0, frames=images(4, 5, 5, 3), **trajectory_arrays(4))
    write_payload(tmp_path, "attr-0-1-2", attribution(2))
    write_payload(tmp_path, "attr-0-0-2", attribution(5, trajectory=0, memory_totals=RNG.standard_normal(5)))
    write_feature(
        tmp_path,
        0,
        0,
        thumbnail=images(4, 4, 3),
        popups=[dataset_examples.popup(images(3, 8, 8, 3), np.zeros((3, 4, 4), np.float32), 1, 0.5)],
    )
    keys = [p.stem for p in tmp_path.glob("*.js")]
    assert sorted(keys) == ["attr-0-0-2", "attr-0-1-2", "feat-0-0", "manifest", "traj-0"]
    by_kind = {cls.KIND: cls.__name__ for cls in PAYLOAD_TYPES}
    for key in keys:
        obj = read_raw(tmp_path, key)
        _check(schema, schema["$defs"][by_kind[obj["kind"]]], obj)
    assert Path(tmp_path / "feat-0-0-p0.png").is_file()
