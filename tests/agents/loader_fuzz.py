"""Run by tests/agents/test_loader_fuzz.py in its own process, so that its address space can be
capped and its peak memory measured apart from pytest's.

    python tests/agents/loader_fuzz.py fuzz WORK_DIR CASES SEED   # mutate seed files, load each
    python tests/agents/loader_fuzz.py cli FILE...                # `inspect` each file via cli.main
    python tests/agents/loader_fuzz.py command REPORT ARGS...     # the command itself, once

Both print one JSON object on stdout. ``fuzz`` builds small valid files of every loader format,
mutates them with a seeded RNG (bit flips, truncations, header and metadata rewrites, swapped,
dropped and renamed entries, hostile values) and loads each: it must load and give finite
outputs of the right shape (or non-finite ones that ``Agent.act`` refuses with a UserError),
or raise a one-line UserError. Anything else is reported with the mutation that caused it.
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import runpy
import sys
import time
import traceback
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from sb3_names import as_sb3_state

from understanding_rl_vision.errors import UserError

HEADROOM = 1 << 30  # address space allowed above what the warmed-up process maps
CASE_SECONDS = 5.0
HOSTILE = [
    None,
    True,
    0,
    -1,
    3,
    2**63,
    10**30,
    1e308,
    0.5,
    float("nan"),
    float("inf"),
    "",
    "x",
    "8",
    [],
    [100000, 100000, 3],
    [8, 8],
    [8, 8, 3, 1],
    [-8, 8, 3],
    ["8", "8", "3"],
    [8.5, 8, 3],
    {},
    {"a": 1},
    [[]],
    [2**40],
    "NHWC",
]
DEEP = "[" * 100_000 + "]" * 100_000  # nesting past Python's recursion limit
WIDE = "[" + "0," * 2_000_000 + "0]"  # more values than any metadata


def _rss_mb() -> float:
    """This process's peak resident memory. Not ``ru_maxrss``: Linux folds the parent's peak into a
    child's at fork and exec, so under pytest it would report pytest's."""
    return _status("VmHWM") / 1024


def _status(field: str) -> int:
    """A /proc/self/status value, in kB."""
    lines = Path("/proc/self/status").read_text().splitlines()
    return int(next(line.split()[1] for line in lines if line.startswith(field + ":")))


def _cap_address_space() -> int:
    mapped = _status("VmSize") * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mapped + HEADROOM, resource.RLIM_INFINITY))
    return mapped + HEADROOM


# ---- seed files ------------------------------------------------------------------------------


def _sb3_data(shape=(1, 36, 36), actions=3) -> dict:
    name, module = b"ActorCriticCnnPolicy", b"stable_baselines3.common.policies"
    pickled = (
        b"\x80\x04\x8c" + bytes([len(module)]) + module + b"\x94\x8c" + bytes([len(name)]) + name + b"\x94\x93\x94."
    )  # protocol 4: SHORT_BINUNICODE x2, STACK_GLOBAL, as cloudpickle writes a class
    import base64

    return {
        "policy_class": {
            ":type:": "<class 'abc.ABCMeta'>",
            ":serialized:": base64.b64encode(pickled).decode(),
            "__module__": "stable_baselines3.common.policies",
        },
        "observation_space": {":type:": "<class 'gymnasium.spaces.box.Box'>", "dtype": "uint8", "_shape": list(shape)},
        "action_space": {":type:": "<class 'gymnasium.spaces.discrete.Discrete'>", "n": actions},
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "policy_kwargs": {},
    }


def _write_zip(path: Path, entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> None:
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", method) as archive:
        warnings.simplefilter("ignore")  # duplicate names are one of the mutations
        for name, data in entries:
            archive.writestr(name, data)


def _torch_bytes(obj, legacy: bool = False) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


def make_seeds(work: Path) -> dict[str, dict]:
    """Small valid files: ours, an SB3 zip, CleanRL-style torch.save state dicts, a safetensors
    state dict; each with what its structural mutations need."""
    from safetensors.torch import save as save_safetensors

    from understanding_rl_vision.agents import make_agent, save_checkpoint
    from understanding_rl_vision.agents.architectures import build_model
    from understanding_rl_vision.agents.base import ArchitectureSpec

    torch.manual_seed(0)
    agent = make_agent("impala", None, (8, 8, 3), ["a", "b", "c"], seed=0, channels=[4], hidden_size=8)
    native = save_checkpoint(agent, work / "seed.safetensors").read_bytes()
    nature = build_model(ArchitectureSpec("nature", {"hidden_size": 8}), (36, 36, 1), 3)
    sb3_state = as_sb3_state(nature)
    sb3_entries = [
        ("data", json.dumps(_sb3_data()).encode()),
        ("policy.pth", _torch_bytes(sb3_state)),
        ("_stable_baselines3_version", b"2.3.2"),
    ]
    _write_zip(work / "seed.zip", sb3_entries)
    impala = agent.model.state_dict()
    cleanrl = {}  # ppo_procgen names: network.0 = the one stack, network.3 = the dense layer
    for key, value in impala.items():
        key = key.replace("stacks.0.", "network.0.").replace("res0", "res_block0").replace("res1", "res_block1")
        key = key.replace("fc.", "network.3.").replace("policy.", "actor.").replace("value.", "critic.")
        cleanrl[key] = value.clone()
    return {
        "native": {"data": native},
        "sb3": {"data": (work / "seed.zip").read_bytes(), "entries": sb3_entries, "state": sb3_state},
        "state-dict": {"data": _torch_bytes(cleanrl), "state": cleanrl},
        "legacy": {"data": _torch_bytes(cleanrl, legacy=True), "state": cleanrl},
        "safetensors": {"data": save_safetensors({k: v.contiguous() for k, v in cleanrl.items()}), "state": cleanrl},
    }


# ---- mutations -------------------------------------------------------------------------------


def _flip(rng, data: bytes, lo: int = 0, hi: int | None = None, count: int | None = None) -> tuple[bytes, str]:
    out, hi = bytearray(data), min(hi or len(data), len(data))
    spots = []
    for _ in range(count or int(rng.integers(1, 5))):
        at = int(rng.integers(lo, max(hi, lo + 1))) if hi > lo else 0
        bit = int(rng.integers(8))
        out[at] ^= 1 << bit
        spots.append(f"{at}:{bit}")
    return bytes(out), f"flip {' '.join(spots)}"


def _hostile(rng):
    return HOSTILE[int(rng.integers(len(HOSTILE)))]


def _mutate_state(rng, state: dict) -> tuple[object, str]:
    """A structural change to a state dict: renamed, dropped, reshaped, retyped, wrapped..."""
    state, key = dict(state), list(state)[int(rng.integers(len(state)))]
    op = str(
        rng.choice(
            [
                "rename",
                "drop",
                "extra",
                "reshape",
                "scalar",
                "half",
                "int8",
                "bool",
                "nan",
                "inf",
                "huge",
                "wrap",
                "not-tensor",
                "int-key",
                "list",
                "swap",
                "expand",
                "shared",
            ]
        )
    )
    value = state[key]
    if op == "rename":
        state[key + "x"] = state.pop(key)
    elif op == "drop":
        del state[key]
    elif op == "extra":
        state["extra.weight"] = torch.zeros(2)
    elif op == "reshape":
        state[key] = value.reshape(-1) if value.dim() > 1 else value.reshape(1, -1)
    elif op == "scalar":
        state[key] = torch.tensor(1.0)
    elif op in ("half", "int8", "bool"):
        state[key] = value.to({"half": torch.float16, "int8": torch.int8, "bool": torch.bool}[op])
    elif op in ("nan", "inf", "huge"):
        state[key] = torch.full_like(value, {"nan": float("nan"), "inf": float("inf"), "huge": 1e30}[op])
    elif op == "wrap":
        return {"state_dict": state}, "wrap in state_dict"
    elif op == "not-tensor":
        state[key] = [1, 2, 3]
    elif op == "int-key":
        state[7] = state.pop(key)
    elif op == "list":
        return list(state.values()), "a list of tensors"
    elif op == "expand":  # one stored value posing as the whole tensor (stride 0)
        state[key] = torch.zeros(1).expand(value.shape)
    elif op == "shared":  # every name a view of the same data
        return {name: torch.zeros(1 << 16)[: tensor.numel()].view(tensor.shape) for name, tensor in state.items()}, op
    else:
        other = list(state)[int(rng.integers(len(state)))]
        state[key], state[other] = state[other], state[key]
        return state, f"swap {key} {other}"
    return state, f"{op} {key}"


def _mutate_native(rng, data: bytes) -> tuple[bytes, str]:
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    op = str(
        rng.choice(
            [
                "flip",
                "flip-header",
                "truncate",
                "append",
                "length",
                "entry",
                "swap-offsets",
                "config",
                "kwargs",
                "format",
                "deep",
                "wide",
            ]
        )
    )
    if op == "flip":
        return _flip(rng, data)
    if op == "flip-header":
        return _flip(rng, data, 0, 8 + length)
    if op == "truncate":
        cut = int(rng.integers(len(data)))
        return data[:cut], f"truncate at {cut}"
    if op == "append":
        return data + rng.bytes(int(rng.integers(1, 64))), "append junk"
    if op == "length":
        new = int(rng.choice([0, 1, length - 1, length + 1, 2**63 - 1, 2**40, 200_000_000]))
        return new.to_bytes(8, "little") + data[8:], f"length {new}"
    config = json.loads(header["__metadata__"]["config"])
    names = [k for k in header if k != "__metadata__"]
    name = names[int(rng.integers(len(names)))]
    if op == "entry":
        field = str(rng.choice(["dtype", "shape", "data_offsets"]))
        value = (
            _hostile(rng)
            if rng.random() < 0.6
            else {"dtype": "I8", "shape": [2**31, 2**31], "data_offsets": [0, 2**62]}[field]
        )
        header[name][field] = value
        description = f"entry {name}.{field} = {value!r:.40}"
    elif op == "swap-offsets":
        other = names[int(rng.integers(len(names)))]
        header[name]["data_offsets"], header[other]["data_offsets"] = (
            header[other]["data_offsets"],
            header[name]["data_offsets"],
        )
        description = f"swap offsets {name} {other}"
    elif op in {"config", "kwargs"}:
        target = config if op == "config" else config["architecture"]["kwargs"]
        keys = [*target, "unknown"]
        key = keys[int(rng.integers(len(keys)))]
        value = _hostile(rng)
        if rng.random() < 0.15:
            target.pop(key, None)
        else:
            target[key] = value
        header["__metadata__"]["config"] = json.dumps(config)
        description = f"{op} {key} = {value!r:.40}"
    elif op == "format":
        key = str(rng.choice(["format", "format_version", "config"]))
        header["__metadata__"][key] = str(_hostile(rng))
        description = f"metadata {key} = {header['__metadata__'][key]!r:.40}"
    else:  # deep or wide JSON as the config
        header["__metadata__"]["config"] = DEEP if op == "deep" else WIDE
        description = f"{op} config JSON"
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + data[8 + length :], description


def _mutate_sb3(rng, seed: dict) -> tuple[bytes, str]:
    entries = list(seed["entries"])
    op = str(
        rng.choice(
            [
                "flip",
                "flip-directory",
                "flip-local",
                "truncate",
                "swap",
                "drop",
                "rename",
                "duplicate",
                "data-field",
                "data-whole",
                "inner-flip",
                "inner-state",
                "deflate",
            ]
        )
    )
    data = seed["data"]
    if op == "flip":
        return _flip(rng, data)
    if op == "flip-directory":
        return _flip(rng, data, len(data) - 300)
    if op == "flip-local":
        return _flip(rng, data, 0, 120)
    if op == "truncate":
        cut = int(rng.integers(len(data)))
        return data[:cut], f"truncate at {cut}"
    description = op
    if op == "swap":
        i, j = rng.choice(len(entries), 2, replace=False)
        entries[i], entries[j] = (entries[i][0], entries[j][1]), (entries[j][0], entries[i][1])
        description = f"swap {entries[i][0]} {entries[j][0]}"
    elif op in ("drop", "rename", "duplicate"):
        i = int(rng.integers(len(entries)))
        description = f"{op} {entries[i][0]}"
        if op == "drop":
            del entries[i]
        elif op == "rename":
            entries[i] = (entries[i][0] + ".bak", entries[i][1])
        else:
            entries.append((entries[i][0], entries[(i + 1) % len(entries)][1]))
    elif op in ("data-field", "data-whole"):
        sb3 = _sb3_data()
        if op == "data-whole":
            texts = [DEEP, WIDE, "[]", "null", "{", json.dumps(_hostile(rng))]
            text = texts[int(rng.integers(len(texts)))]  # (rng.choice would copy them all into an array)
            description = f"data = {text[:30]!r}"
        else:
            path = [
                ("observation_space", "_shape"),
                ("action_space", "n"),
                ("gamma",),
                ("gae_lambda",),
                ("policy_class",),
                ("policy_kwargs",),
                ("observation_space",),
                ("action_space",),
                ("policy_class", ":serialized:"),
            ][int(rng.integers(9))]
            value = _hostile(rng)
            target = sb3
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
            text = json.dumps(sb3)
            description = f"data {'.'.join(path)} = {value!r:.40}"
        entries[0] = ("data", text.encode())
    elif op == "inner-flip":
        inner, description = _flip(rng, entries[1][1])
        entries[1] = ("policy.pth", inner)
        description = "policy.pth " + description
    elif op == "inner-state":
        state, description = _mutate_state(rng, seed["state"])
        entries[1] = ("policy.pth", _torch_bytes(state))
        description = "policy.pth " + description
    buffer = io.BytesIO()
    _write_zip(buffer, entries, zipfile.ZIP_DEFLATED if op == "deflate" else zipfile.ZIP_STORED)  # type: ignore[arg-type]
    return buffer.getvalue(), description


def _mutate_torch(rng, seed: dict, kind: str) -> tuple[bytes, str]:
    data = seed["data"]
    op = str(rng.choice(["flip", "flip-head", "flip-tail", "truncate", "append", "structure", "structure"]))
    if op == "flip":
        return _flip(rng, data)
    if op == "flip-head":
        return _flip(rng, data, 0, 400)
    if op == "flip-tail":
        return _flip(rng, data, len(data) - 400)
    if op == "truncate":
        cut = int(rng.integers(len(data)))
        return data[:cut], f"truncate at {cut}"
    if op == "append":
        return data + rng.bytes(int(rng.integers(1, 64))), "append junk"
    state, description = _mutate_state(rng, seed["state"])
    if kind == "safetensors":
        from safetensors.torch import save as save_safetensors

        try:
            return save_safetensors(state), description  # type: ignore[arg-type]
        except Exception:  # safetensors refuses to write this shape of dict: flip instead
            return _flip(rng, data)
    return _torch_bytes(state, legacy=kind == "legacy"), description


# ---- loading ---------------------------------------------------------------------------------


def attempt(path: Path, kind: str, rng) -> str:
    """'loaded', 'refused at run' (non-finite outputs that Agent.act refuses) or 'error'."""
    from understanding_rl_vision.agents import describe_file, load_agent
    from understanding_rl_vision.agents.formats import read_foreign
    from understanding_rl_vision.agents.formats.describe import weights_agent

    try:
        if kind == "native":
            agent = load_agent(path)
        else:
            describe_file(path)
            agent = weights_agent(read_foreign(path))
    except UserError as exc:
        if "\n" in str(exc) or not str(exc):
            raise AssertionError(f"error message is not one line: {str(exc)!r:.300}") from None
        return "error"
    obs = rng.integers(0, 256, size=(2, *agent.observation_shape), dtype=np.uint8)
    with torch.no_grad():
        out = agent(obs)
    if tuple(out.logits.shape) != (2, agent.num_actions) or tuple(out.value.shape) != (2,):
        raise AssertionError(f"wrong output shapes {tuple(out.logits.shape)} {tuple(out.value.shape)}")
    if bool(torch.isfinite(out.logits).all() and torch.isfinite(out.value).all()):
        return "loaded"
    try:
        agent.act(obs)
    except UserError:
        return "refused at run"
    raise AssertionError("non-finite outputs that Agent.act accepted")


def fuzz(work: Path, cases: int, seed: int) -> dict:
    torch.set_num_threads(1)
    seeds = make_seeds(work)
    rng = np.random.default_rng(seed)
    suffix = {
        "native": ".safetensors",
        "sb3": ".zip",
        "state-dict": ".pth",
        "legacy": ".pth",
        "safetensors": ".safetensors",
    }
    for kind, item in seeds.items():  # warm up: every seed loads, and torch's lazy set-up happens now
        (work / f"warm{suffix[kind]}").write_bytes(item["data"])
        assert attempt(work / f"warm{suffix[kind]}", kind, rng) == "loaded", kind
    baseline, limit = _rss_mb(), _cap_address_space()
    kinds = ["native"] * 3 + ["sb3"] * 3 + ["state-dict"] * 2 + ["legacy", "safetensors"]
    outcomes: dict[str, dict[str, int]] = {}
    failures, slowest, started = [], 0.0, time.perf_counter()
    for case in range(cases):
        kind = kinds[case % len(kinds)]
        if kind == "native":
            data, description = _mutate_native(rng, seeds[kind]["data"])
        elif kind == "sb3":
            data, description = _mutate_sb3(rng, seeds[kind])
        else:
            data, description = _mutate_torch(rng, seeds[kind], kind)
        path = work / f"case{case}{suffix[kind]}"
        path.write_bytes(data)
        began = time.perf_counter()
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # notes for float16 weights
                outcome = attempt(path, kind, rng)
        except BaseException as exc:  # anything but a UserError is what we look for
            outcome = "failure"
            failures.append(
                {
                    "case": case,
                    "kind": kind,
                    "mutation": description,
                    "error": "".join(traceback.format_exception(exc)[-3:])[-800:],
                }
            )
        took = time.perf_counter() - began
        slowest = max(slowest, took)
        if took > CASE_SECONDS:
            failures.append({"case": case, "kind": kind, "mutation": description, "error": f"took {took:.1f} s"})
        outcomes.setdefault(kind, {}).setdefault(outcome, 0)
        outcomes[kind][outcome] = outcomes[kind].get(outcome, 0) + 1
        path.unlink()
    return {
        "cases": cases,
        "outcomes": outcomes,
        "failures": failures,
        "seconds": time.perf_counter() - started,
        "slowest_case_s": slowest,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": _rss_mb(),
        "address_limit_mb": limit / 2**20,
    }


def inspect_each(files: list[str]) -> dict:
    """``understanding-rl-vision inspect FILE`` for each file, in this one process."""
    from understanding_rl_vision.agents.base import ArchitectureSpec
    from understanding_rl_vision.agents.formats import describe  # noqa: F401  # imported by inspect
    from understanding_rl_vision.agents.rebuild import planned_model
    from understanding_rl_vision.cli import main

    torch.set_num_threads(1)
    # warm up what a first load sets up lazily (torch's meta-device kernels), so it is not timed
    with contextlib.suppress(UserError):  # no weights given: it fails, after building on the meta device
        planned_model(ArchitectureSpec("impala", {"channels": [4]}), (8, 8, 3), 3, {}, "warm-up", "warm-up")
    with contextlib.redirect_stderr(io.StringIO()):  # and what the command imports to report an error
        main(["inspect", "/nonexistent/checkpoint.safetensors"])
    baseline, results = _rss_mb(), []
    _cap_address_space()
    for name in files:
        stderr, began = io.StringIO(), time.perf_counter()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            code = main(["inspect", name])
        results.append(
            {
                "file": name,
                "rc": code,
                "stderr": stderr.getvalue(),
                "seconds": time.perf_counter() - began,
                "peak_rss_mb": _rss_mb(),
            }
        )
    return {"baseline_rss_mb": baseline, "results": results}


def command(report: str, argv: list[str]) -> None:
    """The installed command's own module run as ``__main__`` with ``argv``; its peak memory is
    written to ``report`` however it exits."""
    sys.argv = ["understanding-rl-vision", *argv]
    try:
        runpy.run_module("understanding_rl_vision.cli", run_name="__main__")
    finally:
        Path(report).write_text(json.dumps({"peak_rss_mb": _rss_mb()}))


if __name__ == "__main__":
    if sys.argv[1] == "command":
        command(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "fuzz":
        print(json.dumps(fuzz(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))
    else:
        print(json.dumps(inspect_each(sys.argv[2:])))
