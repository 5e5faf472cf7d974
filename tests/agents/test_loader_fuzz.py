"""Hostile and damaged checkpoints: a seeded fuzz of every loader, and the zip bombs, header lies
and absurd shapes of issue 13, each of which must end in one ``error:`` line, quickly, in
bounded memory. The loading runs in child processes (tests/agents/loader_fuzz.py) whose address
space is capped and whose peak memory is measured apart from pytest's."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from sb3_names import as_sb3_state

from understanding_rl_vision.agents import (
    ArchitectureSpec,
    build_model,
    make_agent,
    read_checkpoint_metadata,
    save_checkpoint,
)

HELPER = Path(__file__).with_name("loader_fuzz.py")
GIB = 1 << 30
PEAK_RSS_MB = 600  # python + torch + a small agent is about 300 MB here; a bomb believed would be GBs
CASES = 500


def _run_helper(*args: str, timeout: int = 180) -> dict:
    result = subprocess.run(
        [sys.executable, str(HELPER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_fuzzed_checkpoints_load_or_fail_with_one_line(tmp_path):
    report = _run_helper("fuzz", str(tmp_path), str(CASES), "20240613")
    problems = "\n".join(f"case {f['case']} ({f['kind']}, {f['mutation']}): {f['error']}" for f in report["failures"])
    assert not report["failures"], problems
    outcomes = report["outcomes"]
    assert sum(sum(kind.values()) for kind in outcomes.values()) == CASES
    assert set(outcomes) == {"native", "sb3", "state-dict", "legacy", "safetensors"}
    for kind, counts in outcomes.items():  # the mutations reach both ends: files that still load, and errors
        assert counts.get("error", 0) >= 10 and counts.get("loaded", 0) >= 3, (kind, counts)
    assert report["slowest_case_s"] < 5.0
    assert report["peak_rss_mb"] - report["baseline_rss_mb"] < 300, report
    assert report["seconds"] < 45, report


# ---- bombs, built without ever holding what they inflate to -----------------------------------


def _deflated_zeros(size: int) -> bytes:
    """A raw deflate stream of ``size`` zero bytes (a multiple of 1 MiB), about size/1000 long. A
    block ending in a full flush resets the compressor, so one compressed MiB repeats as is."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return block * (size >> 20) + b"\x03\x00"  # an empty final block ends the stream


def _raw_zip(path: Path, entries: list[tuple[str, bytes, int, int, int]]) -> Path:
    """A zip written field by field: (name, stored bytes, method, declared size, crc) per entry,
    so that an entry can declare any size. A bomb's CRC is left 0: a reader that inflated the
    entry would have spent the memory before it could check it."""
    local, central = bytearray(), bytearray()
    for name, stored, method, size, crc in entries:
        encoded = name.encode()
        header = struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(stored), size, len(encoded), 0
        )
        central += (
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                method,
                0,
                0x21,
                crc,
                len(stored),
                size,
                len(encoded),
                0,
                0,
                0,
                0,
                0,
                len(local),
            )
            + encoded
        )
        local += header + encoded + stored
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), len(local), 0)
    path.write_bytes(bytes(local + central + end))
    return path


def _stored(name: str, data: bytes) -> tuple[str, bytes, int, int, int]:
    return (name, data, zipfile.ZIP_STORED, len(data), zlib.crc32(data))


def _sb3_entries() -> dict[str, bytes]:
    sys.path.insert(0, str(HELPER.parent))
    from loader_fuzz import _sb3_data, _torch_bytes

    from understanding_rl_vision.agents.architectures import build_model
    from understanding_rl_vision.agents.base import ArchitectureSpec

    state = as_sb3_state(build_model(ArchitectureSpec("nature", {"hidden_size": 8}), (36, 36, 1), 3))
    return {"data": json.dumps(_sb3_data()).encode(), "policy.pth": _torch_bytes(state)}


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """Each hostile file with a phrase its one error line must hold."""
    out = tmp_path_factory.mktemp("bombs")
    zeros = _deflated_zeros(2 * GIB)
    sb3 = _sb3_entries()
    data, policy = _stored("data", sb3["data"]), _stored("policy.pth", sb3["policy.pth"])
    bomb = zipfile.ZIP_DEFLATED, 2 * GIB, 0
    files = {
        "policy bomb": (_raw_zip(out / "policy_bomb.zip", [data, ("policy.pth", zeros, *bomb)]), "zip bomb"),
        "policy lie": (  # declares 1000 bytes, inflates to 2 GiB
            _raw_zip(out / "policy_lie.zip", [data, ("policy.pth", zeros, zipfile.ZIP_DEFLATED, 1000, 0)]),
            "corrupt zip file",
        ),
        "data bomb": (_raw_zip(out / "data_bomb.zip", [("data", zeros, *bomb), policy]), "zip bomb"),
    }
    brackets = zlib.compressobj(9, zlib.DEFLATED, -15)
    nested = brackets.compress(b"[" * (16 << 20)) + brackets.flush()  # 16 MiB: at the ratio check's threshold
    files["data of brackets"] = (
        _raw_zip(
            out / "data_brackets.zip",
            [
                ("data", nested, zipfile.ZIP_DEFLATED, 16 << 20, zlib.crc32(b"[" * (16 << 20))),
                _stored("policy.pth", sb3["policy.pth"]),
            ],
        ),
        "JSON values",
    )
    with zipfile.ZipFile(io.BytesIO(sb3["policy.pth"])) as archive:
        entries = [_stored(info.filename, archive.read(info)) for info in archive.infolist()]
    state_bomb = [(e[0], zeros, *bomb) if e[0].endswith("data/0") else e for e in entries]
    files["torch.save bomb"] = (_raw_zip(out / "state_bomb.pth", state_bomb), "zip bomb")
    lists = b"\x80\x02]" + b"]a" * 8_000_000 + b"."  # 16 MB of pickle: 8M empty lists, 570 MB unpickled
    packed = (zlib.compress(lists, 9)[2:-4], zipfile.ZIP_DEFLATED, len(lists), zlib.crc32(lists))  # raw deflate
    lists_zip = [(e[0], *packed) if e[0].endswith("data.pkl") else e for e in entries]
    files["pickle of lists"] = (_raw_zip(out / "lists.pth", lists_zip), "over 1,000,000 operations")
    with torch.device("meta"):
        big = build_model(ArchitectureSpec("impala", {"channels": [1024], "hidden_size": 256}), (16, 16, 3), 3)
    torch.save({k: torch.zeros(1).expand(v.shape) for k, v in big.state_dict().items()}, out / "expanded.pth")
    files["expanded views"] = (out / "expanded.pth", "a stride of 0")  # 6 KB posing as 220 MB of weights

    agent = make_agent("impala", None, (8, 8, 3), ["a", "b", "c"], seed=0, channels=[4], hidden_size=8)
    seed = save_checkpoint(agent, out / "seed.safetensors")
    tensors, meta = load_file(seed), read_checkpoint_metadata(seed)
    meta.pop("format_version")

    def native(name: str, config: dict, **edit) -> Path:
        save_file(
            tensors,
            out / name,
            metadata={
                "format": "understanding-rl-vision",
                "format_version": "1",
                "config": json.dumps({**meta, **config}),
                **edit,
            },
        )
        return out / name

    files["huge observations"] = (
        native("obs.safetensors", {"observation_shape": [100000, 100000, 3]}),
        "implausibly large",
    )
    files["huge network"] = (
        native("wide.safetensors", {"architecture": {"name": "impala", "kwargs": {"channels": [100000]}}}),
        "parameters, over the",
    )
    data = seed.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    header["fc.weight"] = {"dtype": "F32", "shape": [2**20, 2**20], "data_offsets": [0, 2**42]}
    raw = json.dumps(header).encode()
    files["header lie"] = (out / "lie.safetensors", "truncated")
    files["header lie"][0].write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + length :])
    legacy = io.BytesIO()
    torch.save({"w": torch.zeros(10)}, legacy, _use_new_zipfile_serialization=False)
    declared = legacy.getvalue().replace(
        b"K\nN", b"\x8a\x06" + (2**44).to_bytes(6, "little") + b"N"
    )  # numel 10 -> 2**44
    assert declared != legacy.getvalue()
    files["legacy storage lie"] = (out / "legacy.pth", "bytes of tensors")
    files["legacy storage lie"][0].write_bytes(declared)
    return files


def test_bombs_end_in_one_error_line_quickly_in_bounded_memory(bombs):
    report = _run_helper("cli", *(str(path) for path, _ in bombs.values()))
    for (name, (path, phrase)), result in zip(bombs.items(), report["results"]):
        lines = result["stderr"].splitlines()
        assert result["rc"] == 2 and len(lines) == 1 and lines[0].startswith("error: "), (name, result)
        assert phrase in lines[0] and str(path) in lines[0], (name, lines[0])
        assert result["seconds"] < 5, (name, result)
        assert result["peak_rss_mb"] < PEAK_RSS_MB, (name, result)


def test_policy_bomb_through_the_command_in_its_own_process(bombs, tmp_path):
    """The command's own ``__main__``, alone in a fresh process, reporting its peak memory."""
    path, _ = bombs["policy bomb"]
    result = subprocess.run(
        [sys.executable, str(HELPER), "command", str(tmp_path / "rss.json"), "inspect", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(f"error: {path} is a zip bomb"), lines
    assert json.loads((tmp_path / "rss.json").read_text())["peak_rss_mb"] < PEAK_RSS_MB
