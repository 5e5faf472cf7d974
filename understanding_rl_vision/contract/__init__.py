"""The interface's data: typed payloads (:mod:`.schema`), their encoding (:mod:`.codec`), files
written atomically (:mod:`.writer`) and read back as the page reads them (:mod:`.reader`), and
the generated JSON Schema / JavaScript contract (:mod:`.contract`)."""

from __future__ import annotations

from .codec import (
    EncodedArray,
    decode_array,
    decode_png,
    dequantise,
    encode_array,
    encode_png,
    from_json,
    png_data_url,
    quantise,
    to_json,
)
from .contract import javascript_contract, json_schema
from .reader import (
    check_against_manifest,
    parse_envelope,
    read_image,
    read_manifest,
    read_payload,
    read_raw,
    read_sprite,
)
from .schema import (
    DATA_DIRNAME,
    FORMAT_VERSION,
    KEY_TEMPLATES,
    MANIFEST_KEY,
    AttributionPayload,
    Bookmark,
    ByteBudget,
    FeatureInfo,
    FeaturePayload,
    ImageRef,
    LayerInfo,
    Manifest,
    Popup,
    Sprites,
    TrajectoryPayload,
    attribution_key,
    bookmarks_from,
    estimate_bytes,
    feature_key,
    trajectory_key,
)
from .writer import (
    check_key,
    write_feature,
    write_image,
    write_manifest,
    write_observations,
    write_payload,
    write_sprites,
    write_trajectory,
)

__all__ = [
    "DATA_DIRNAME", "FORMAT_VERSION", "KEY_TEMPLATES", "MANIFEST_KEY", "AttributionPayload",
    "Bookmark", "ByteBudget", "EncodedArray", "FeatureInfo", "FeaturePayload", "ImageRef",
    "LayerInfo", "Manifest", "Popup", "Sprites", "TrajectoryPayload", "attribution_key",
    "bookmarks_from", "check_against_manifest",
    "check_key", "decode_array", "decode_png", "dequantise", "encode_array",
    "encode_png", "estimate_bytes", "feature_key", "from_json", "javascript_contract", "json_schema", "parse_envelope",
    "png_data_url", "quantise", "read_image", "read_manifest", "read_payload", "read_raw",
    "read_sprite", "to_json", "trajectory_key", "write_feature",
    "write_image", "write_manifest", "write_observations", "write_payload", "write_sprites",
    "write_trajectory",
]  # fmt: skip
