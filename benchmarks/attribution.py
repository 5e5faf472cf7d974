"""Attribution benchmark: our batched integrated gradients against Captum, in one process.

The job: the IMPALA CNN, 256 CoinRun observations, every discovered layer, the value plus all 15
logits, 10 right-Riemann steps. Three ways to do it:

  (a) ours: ``integrated_gradients`` per layer, all 16 outputs from one forward pass (and, for
      comparison, the same with ``batching="vmap"``);
  (b) what a Captum user writes: ``LayerIntegratedGradients``, one call per output and layer
      (its baseline is the layer activation of a zero *input*, so only time is compared);
  (c) Captum ``IntegratedGradients`` on the sub-network above each layer, zero baseline: the same
      quantity as ours, so values are compared too.

Also: peak memory of each, our GFLOP/s against a measured fp32 matmul peak, and the
Gauss-Legendre step count that matches 10-step Riemann completeness on the bundled agent.

    python benchmarks/attribution.py            # the full job (several minutes on 2 cores)
    python benchmarks/attribution.py --quick    # a smaller job, under a minute
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import threading
import time
from collections.abc import Callable

import torch
from captum.attr import IntegratedGradients, LayerIntegratedGradients
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from understanding_rl_vision.agents import load_checkpoint
from understanding_rl_vision.attribution import (
    capture,
    completeness_error,
    discover_layers,
    explain_agent,
    forward_hooks,
    integrated_gradients,
)
from understanding_rl_vision.config import TrajectoryConfig
from understanding_rl_vision.demo import bundled_agent_path
from understanding_rl_vision.rollout import collect_trajectories

_LIBC = ctypes.CDLL("libc.so.6")


class PeakRSS:
    """Peak resident memory above the starting level while the block runs (sampled every 5 ms)."""

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = _rss()
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while self._running:
            self.peak = max(self.peak, _rss())
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self._running = False
        self._thread.join()

    @property
    def mb(self) -> float:
        return (self.peak - self.start) / 2**20


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


class FlopCount(TorchDispatchMode):
    """FLOPs of every matmul/convolution (forward and backward) run inside the block.

    torch's FlopCounterMode also tracks modules with backward hooks, which Captum's gradient calls
    refuse; this counts with the same per-operator formulas and no hooks.
    """

    flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func.overloadpacket)
        if count is not None:
            self.flops += count(*args, **kwargs, out_val=out)
        return out


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    gc.collect()
    _LIBC.malloc_trim(0)  # hand freed heap back, so each peak starts from live memory only
    with PeakRSS() as memory:
        started = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - started
    return result, seconds, memory.mb


def matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def tune_captum_batch(agent, explained, inputs, layers, output, steps) -> int:
    """The internal_batch_size (1, 2, 5 or all steps per batch) under which LayerIntegratedGradients
    runs the first and last layer fastest: a fair tuning of the peer, as a Captum user would do it."""
    weights = torch.tensor(output.weights)
    modules = dict(agent.model.named_modules())
    timings = {}
    # Captum runs floor(batch / frames) integration steps per internal batch, so only these differ.
    for batch in sorted({len(inputs) * per_batch for per_batch in (1, 2, 5, steps)}):
        started = time.perf_counter()
        for layer in (layers[0], layers[-1]):
            lig = LayerIntegratedGradients(lambda x: explained.forward(x) @ weights, modules[layer])
            lig.attribute(
                inputs,
                baselines=torch.zeros_like(inputs),
                n_steps=steps,
                method="riemann_right",
                internal_batch_size=batch,
            )
        timings[batch] = time.perf_counter() - started
    print("Captum internal_batch_size probe (s): " + ", ".join(f"{b}: {t:.2f}" for b, t in timings.items()))
    return min(timings, key=timings.get)


def main() -> None:
    parser = argparse.ArgumentParser(description="attribution benchmark (ours vs Captum)")
    parser.add_argument("--quick", action="store_true", help="32 frames, 2 layers, 4 outputs")
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--captum-batch", type=int, default=None, help="Captum internal_batch_size (default: the fastest on a probe)"
    )
    args = parser.parse_args()
    frames = 32 if args.quick else args.frames

    path = bundled_agent_path()
    if path is None:
        raise SystemExit("the benchmark uses the bundled demo agent, which this install lacks")
    agent = load_checkpoint(path)
    agent.model.to(memory_format=torch.channels_last)
    trajectories = collect_trajectories(
        agent, TrajectoryConfig(num_envs=8, num_steps=frames // 8), seed=0, progress=False
    )
    observations = trajectories.observations.reshape(-1, *agent.observation_shape)[:frames]
    inputs = agent.preprocess(observations)
    explained = explain_agent(agent)
    layers = [layer.name for layer in discover_layers(agent.model, inputs[:1])]
    names = ["value", "logits"]
    outputs = explained.outputs(names)
    if args.quick:
        layers, outputs = [layers[1], layers[3]], outputs[:4]
    print(
        f"job: {frames} CoinRun frames x {len(layers)} layers x {len(outputs)} outputs x "
        f"{args.steps} steps; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )

    captum_batch = args.captum_batch or tune_captum_batch(agent, explained, inputs, layers, outputs[0], args.steps)
    print(f"Captum internal_batch_size: {captum_batch}")

    # (a) ours
    ours, time_a, mem_a = timed(
        lambda: {
            layer: integrated_gradients(explained, inputs, layer, outputs, steps=args.steps).values for layer in layers
        }
    )
    print(f"(a) ours                          {time_a:8.2f} s   peak +{mem_a:7.0f} MB")
    _, time_v, mem_v = timed(
        lambda: [
            integrated_gradients(explained, inputs, layer, outputs, steps=args.steps, batching="vmap")
            for layer in layers
        ]
    )
    print(f"(a') ours with batching='vmap'    {time_v:8.2f} s   peak +{mem_v:7.0f} MB")

    # (b) Captum LayerIntegratedGradients, one call per output and layer
    def captum_layer_ig() -> None:
        for layer in layers:
            module = dict(agent.model.named_modules())[layer]
            for output in outputs:
                weights = torch.tensor(output.weights)
                lig = LayerIntegratedGradients(lambda x, w=weights: explained.forward(x) @ w, module)
                lig.attribute(
                    inputs,
                    baselines=torch.zeros_like(inputs),
                    n_steps=args.steps,
                    method="riemann_right",
                    internal_batch_size=captum_batch,
                )

    _, time_b, mem_b = timed(captum_layer_ig)
    print(f"(b) Captum LayerIntegratedGradients {time_b:6.2f} s   peak +{mem_b:7.0f} MB")

    # (c) Captum IntegratedGradients on the sub-network above each layer
    def captum_subnet_ig() -> dict[str, torch.Tensor]:
        results = {}
        for layer in layers:
            with capture(agent.model, [layer]) as captured, torch.no_grad():
                explained.forward(inputs)
            activation = captured[layer].detach()
            per_output = []
            for output in outputs:
                weights = torch.tensor(output.weights)

                def upper(scaled: torch.Tensor, weights: torch.Tensor = weights, layer: str = layer) -> torch.Tensor:
                    with forward_hooks(agent.model, {layer: lambda module, a, out: scaled}):
                        return explained.forward(inputs[:1]) @ weights

                per_output.append(
                    IntegratedGradients(upper).attribute(
                        activation,
                        baselines=torch.zeros_like(activation),
                        n_steps=args.steps,
                        method="riemann_right",
                        internal_batch_size=captum_batch,
                    )
                )
            results[layer] = torch.stack(per_output)
        return results

    reference, time_c, mem_c = timed(captum_subnet_ig)
    print(f"(c) Captum IG on the sub-network  {time_c:8.2f} s   peak +{mem_c:7.0f} MB")
    relative = torch.cat(
        [((ours[layer] - reference[layer]).abs() / reference[layer].abs().max()).flatten() for layer in layers]
    )
    max_rel = float(relative.max())
    sample = relative[torch.randperm(len(relative), generator=torch.Generator().manual_seed(0))[: 1 << 24]]
    percentiles = {q: float(sample.quantile(q)) for q in (0.5, 0.999)}

    # Achieved GFLOP/s: count our FLOPs on the whole job, against a measured matmul peak.
    with FlopCount() as counter:
        for layer in layers:
            integrated_gradients(explained, inputs[: min(frames, 32)], layer, outputs, steps=args.steps)
    flops = counter.flops * frames / min(frames, 32)
    achieved = flops / time_a / 1e9
    # The same count for (b) on a few frames: how much of the speedup is less work, how much speed.
    probe = inputs[:8]
    with FlopCount() as counter:
        for layer in layers:
            module = dict(agent.model.named_modules())[layer]
            for output in outputs:
                weights = torch.tensor(output.weights)
                LayerIntegratedGradients(lambda x, w=weights: explained.forward(x) @ w, module).attribute(
                    probe, baselines=torch.zeros_like(probe), n_steps=args.steps, method="riemann_right"
                )
    flops_b = counter.flops * frames / len(probe)
    peak = matmul_peak_gflops()

    # Gauss-Legendre steps that match 10-step Riemann completeness on the trained agent.
    layer = layers[len(layers) // 2]
    sample = inputs[:64]
    started = time.perf_counter()
    riemann = integrated_gradients(explained, sample, layer, outputs, steps=10, rule="riemann")
    riemann_seconds = time.perf_counter() - started
    target = float(completeness_error(explained, sample, riemann, outputs).median())
    gl_steps, gl_seconds = None, None
    for steps in range(1, 11):
        started = time.perf_counter()
        gauss = integrated_gradients(explained, sample, layer, outputs, steps=steps, rule="gauss-legendre")
        seconds = time.perf_counter() - started
        if float(completeness_error(explained, sample, gauss, outputs).median()) <= target:
            gl_steps, gl_seconds = steps, seconds
            break

    print(f"speedup vs LayerIntegratedGradients: {time_b / time_a:.2f}x")
    print(f"speedup vs sub-network IntegratedGradients: {time_c / time_a:.2f}x")
    print(
        f"FLOPs: ours {flops / 1e12:.2f} T, LayerIntegratedGradients {flops_b / 1e12:.2f} T "
        f"({flops_b / flops:.2f}x the work; the rest of the speedup, {time_b / time_a / (flops_b / flops):.2f}x, "
        f"is FLOP/s)"
    )
    print(f"vmap batching takes {time_v / time_a:.2f}x as long as sequential")
    print(
        f"relative difference vs (c), |ours - captum| / max |captum| per layer: max {max_rel:.2e}, "
        f"median {percentiles[0.5]:.1e}, 99.9th percentile {percentiles[0.999]:.1e}"
    )
    print(f"ours: {achieved:.1f} GFLOP/s; fp32 matmul peak {peak:.1f} GFLOP/s ({100 * achieved / peak:.1f}% of peak)")
    print(
        f"completeness (median rel. error) of 10-step Riemann at {layer}: {target:.2e}; "
        f"Gauss-Legendre matches it with {gl_steps} steps, "
        f"{riemann_seconds / gl_seconds if gl_seconds else float('nan'):.2f}x faster"
    )
    print(
        f"RESULT attribution speedup_vs_layerig={time_b / time_a:.2f} "
        f"speedup_vs_subnet_ig={time_c / time_a:.2f} max_rel_diff={max_rel:.2e} "
        f"gflops_frac_of_peak={achieved / peak:.3f}"
    )


if __name__ == "__main__":
    main()
