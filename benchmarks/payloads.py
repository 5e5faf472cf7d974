"""Attribution payload sizes per frame, against the entropy of what they store (issue 20, goal 3).

    .venv/bin/python benchmarks/payloads.py rl-vision-demo [--goal 1500]

For every layer of an output folder: the bytes of its ``attr-*`` payload scripts per frame and
output (as written: deflate, then base85), and the zeroth-order entropy of the stored symbols (the
uint8 positive and negative levels, the int8 residual) per frame, which no coder that looks at one
value at a time beats, and which deflate's Huffman codes approach. With maps quantised on the
display scale (steps of 4% of it, the coarsest within the 2% error bound), the entropy is the floor
of that bound for coders of single values; the payload's 5/4 base85 text on top of it is what a
``<script>`` payload costs to stay loadable from file://.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from understanding_rl_vision.contract.codec import decode_stored
from understanding_rl_vision.contract.reader import read_manifest, read_raw


def entropy_bits(symbols: np.ndarray) -> float:
    """Zeroth-order entropy of all ``symbols`` together, in bits (total, not per symbol)."""
    counts = np.bincount(symbols.ravel().astype(np.int64) - int(symbols.min()))
    p = counts[counts > 0] / symbols.size
    return float(-(p * np.log2(p)).sum() * symbols.size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="a run's output folder (holding data/)")
    parser.add_argument("--goal", type=float, default=1500.0, help="bytes per frame and output at the first layer")
    args = parser.parse_args()
    data = args.output / "data"
    manifest = read_manifest(data)
    sizes: dict[int, list[float]] = defaultdict(list)
    floors: dict[int, list[float]] = defaultdict(list)
    for path in sorted(data.glob("attr-*.js")):
        raw = read_raw(data, path.stem)
        frames = raw["positive"]["shape"][0]
        levels = [decode_stored(raw[name])[0] for name in ("positive", "negative")]
        residual = decode_stored(raw["residual"])[0]
        bits = entropy_bits(np.concatenate([part.ravel() for part in levels])) + entropy_bits(residual)
        sizes[raw["layer"]].append(path.stat().st_size / frames)
        floors[raw["layer"]].append(bits / 8 / frames)
    print(f"{len(manifest.outputs)} outputs, {sum(len(v) for v in sizes.values())} attribution payloads in {data}")
    print("| layer | shape (C, h, w) | payloads | bytes per frame and output | entropy of the stored levels ", end="")
    print("| file / entropy |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for index, layer in enumerate(manifest.layers):
        if index not in sizes:
            continue
        size, floor = float(np.mean(sizes[index])), float(np.mean(floors[index]))
        count = len(sizes[index])
        print(f"| {layer.label} | {layer.shape} | {count} | {size:,.0f} | {floor:,.0f} | {size / floor:.2f} |")
    first = min(sizes)
    size, floor = float(np.mean(sizes[first])), float(np.mean(floors[first]))
    total = sum(p.stat().st_size for p in data.glob("attr-*.js"))
    print(
        f"RESULT payloads layer={manifest.layers[first].label} bytes_per_frame={size:.0f} "
        f"entropy_per_frame={floor:.0f} goal={args.goal:.0f} goal_ratio={size / args.goal:.2f} "
        f"floor_ratio={floor / args.goal:.2f} attr_total_mb={total / 1e6:.1f}"
    )


if __name__ == "__main__":
    main()
