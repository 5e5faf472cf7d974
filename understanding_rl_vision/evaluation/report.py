"""The report card: every method's faithfulness checks on the same frames, side by side.

For each method, on frames of the agent's own play, and one output (the value):

* **sanity** (Adebayo et al. 2018): the layers are re-initialised top-down, one more at a time,
  and the maps recomputed; a map that explains the trained network should stop resembling the
  original (Spearman of |map| below ``sanity_threshold`` once every layer is random).
* **deletion / insertion**: pixels are blurred away (or restored into a blurred frame) in the
  map's order, and the area under the output's curve compared with a random map's on the same
  frames (Petsiuk et al. 2018; Huber et al. 2022 for Atari agents). A check passes when the
  paired per-frame difference's 95% interval lies on the faithful side.
* **completeness**: for a method declaring it (``MethodInfo.complete``), how far the attribution's
  sum is from the output's change from a zero activation.
* **objects / pointing**: with ground truth (:mod:`.objects`), the share of the map's positive
  mass on game objects and whether its peak hits one, against the objects' share of the frame.

Maps of a layer method are summed over channels and upsampled to the input, so every method is
judged on the same pixels. Everything is batched over frames; the sanity cascade costs one
recomputation of every method per randomised layer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..agents.base import Agent
from ..attribution import INPUT_LAYER, ExplainedModel, Layer, Output, explain_agent
from ..attribution.integrated_gradients import output_at
from ..attribution.methods import Method
from ..config import EvaluationConfig
from ..contract.schema import CategoryScore, ReportCard, ReportRow
from ..envs.spec import EnvSpec
from ..rollout import Trajectories
from .curves import auc, centre_maps, gaussian_blur, perturbation_curves, random_maps
from .localisation import area_share, boxes_to_masks, category_masks, mass_share, pointing_hits
from .objects import GameObjects, read_objects
from .randomisation import randomisable_layers, randomised_models, spearman, ssim

CARD_OUTPUT = "value"
"""The output every method is judged on: the one every agent has and every method explains."""
COMPLETENESS_TOLERANCE = 0.05
"""A complete method passes when its mean relative completeness error is below this."""
CURVE_CHUNK = 64
"""Perturbed images per forward pass: on a CPU the network costs 2.5-3 ms an image in batches of
16-64 and 3.9 ms in batches of 256 (benchmarks/report_card.py)."""
Z95 = 1.96
"""Normal quantile of a two-sided 95% interval."""
CHECKS = ("sanity", "deletion", "insertion", "completeness", "objects", "pointing")


@dataclass(frozen=True)
class CardFrames:
    """The frames a card is computed on, and what the methods and ground truth need of them."""

    observations: np.ndarray  # (N, H, W, C) uint8
    actions: np.ndarray  # (N,) int64, the action taken at each
    states: np.ndarray | None  # (N, S) a recurrent agent's state entering each; None otherwise
    positions: tuple[tuple[int, int], ...]  # (trajectory, frame) of each
    ram: np.ndarray | None  # (N, R) console RAM at each (Atari), for the ground truth


@dataclass(frozen=True)
class CardMethod:
    """One method and where it is judged: a layer (maps summed over channels) or None (the input)."""

    method: Method
    layer: Layer | None

    @property
    def site(self) -> str:
        return INPUT_LAYER if self.layer is None else self.layer.label


def spread_frames(trajectories: Trajectories, count: int) -> CardFrames:
    """``count`` frames spread evenly over every trajectory's steps, trajectory-major."""
    E, T = trajectories.num_envs, trajectories.num_steps
    flat = np.unique(np.linspace(0, E * T - 1, min(count, E * T)).round().astype(np.int64))
    rows, steps = np.divmod(flat, T)
    states = None if trajectories.states is None else trajectories.states[rows, steps]
    return CardFrames(
        observations=trajectories.observations[rows, steps],
        actions=trajectories.actions[rows, steps],
        states=states,
        positions=tuple((int(r), int(s)) for r, s in zip(rows, steps)),
        ram=None if trajectories.ram is None else trajectories.ram[rows, steps],
    )


def card_methods(model: torch.nn.Module, methods: Sequence[Method], layer: Layer | None) -> list[CardMethod]:
    """The methods a card can judge (those making maps or channels that apply to the model), each
    at ``layer`` if it attaches to one (and there is one), else at the input."""
    chosen = []
    for method in methods:
        info = method.info
        if info.produces == "tree" or not method.applies_to(model):
            continue
        if info.attaches == "layer" and layer is None:
            continue
        chosen.append(CardMethod(method, layer if info.attaches == "layer" else None))
    return chosen


def report_card(
    agent: Agent,
    env: EnvSpec,
    frames: CardFrames,
    methods: Sequence[CardMethod],
    settings: EvaluationConfig = EvaluationConfig(),
    *,
    seed: int = 0,
    progress: bool = False,
) -> ReportCard:
    """Every check of every method on ``frames``, as the contract's :class:`ReportCard`."""
    explained = explain_agent(agent).with_states(frames.states)
    output = explained.outputs([CARD_OUTPUT])[0]
    inputs = agent.preprocess(frames.observations)
    actions = torch.as_tensor(frames.actions)
    size = (int(inputs.shape[-2]), int(inputs.shape[-1]))
    count = len(inputs)

    originals, completeness = [], []
    for chosen in methods:
        maps, error = _maps(chosen, explained, inputs, output, actions, size, complete=True)
        originals.append(maps)
        completeness.append(error)

    layers = randomisable_layers(agent.model)
    rho = torch.zeros(len(methods), len(layers))
    structure = torch.zeros(len(methods), len(layers))
    cascade = randomised_models(agent.model, seed=seed + 42)
    for step, (_, model) in enumerate(tqdm(cascade, total=len(layers), desc="sanity", disable=not progress)):
        randomised = explain_agent(dataclasses.replace(agent, model=model)).with_states(frames.states)
        for m, chosen in enumerate(methods):
            maps = _maps(chosen, randomised, inputs, output, actions, size)[0]
            rho[m, step] = spearman(originals[m].abs(), maps.abs()).mean()
            structure[m, step] = ssim(_unit(originals[m].abs()), _unit(maps.abs()), 1.0).mean()

    forward = _scalar(explained, output)
    baseline = gaussian_blur(inputs.float(), settings.report_blur)
    steps = settings.report_steps

    def areas(maps: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        curves = [
            perturbation_curves(forward, inputs, maps, baseline, steps, mode, chunk=CURVE_CHUNK, by_frame=True)
            for mode in ("deletion", "insertion")
        ]
        return auc(curves[0]).numpy(), auc(curves[1]).numpy()

    generator = torch.Generator().manual_seed(seed)
    random_deletion, random_insertion = areas(random_maps(count, size[0], size[1], generator))
    centre_deletion, centre_insertion = areas(centre_maps(count, size[0], size[1]))

    objects, source = read_objects(env, frames.ram)
    masks = _object_masks(objects, size)
    rows = []
    for m, chosen in enumerate(methods):
        deletion, insertion = areas(originals[m])
        verdicts = {
            "sanity": bool(rho[m, -1] < settings.sanity_threshold) if len(layers) else None,
            "deletion": _better(random_deletion - deletion),
            "insertion": _better(insertion - random_insertion),
            "completeness": None if (error := completeness[m]) is None else error < COMPLETENESS_TOLERANCE,
        }
        mass = pointing = None
        categories: tuple[CategoryScore, ...] = ()
        if masks is not None:
            everything, by_category = masks
            share, hits, chance = _localisation(originals[m], everything)
            mass, pointing = _mean(share), _round(float(hits.mean()))
            verdicts["objects"] = _better(share - chance)
            verdicts["pointing"] = _better(hits - chance)
            categories = tuple(
                CategoryScore(
                    category=name,
                    mass=_mean(s) or 0.0,
                    chance=_round(float(c.mean())),
                    pointing=_round(float(h.mean())),
                )
                for name, category in by_category.items()
                for s, h, c in [_localisation(originals[m], category, present=True)]
                if len(h)
            )
        rows.append(
            ReportRow(
                method=chosen.method.info.name,
                title=chosen.method.info.title,
                site=chosen.site,
                sanity_spearman=_rounded(rho[m]),
                sanity_ssim=_rounded(structure[m]),
                deletion_auc=_round(float(deletion.mean())),
                insertion_auc=_round(float(insertion.mean())),
                frame_deletion=_rounded(deletion),
                frame_insertion=_rounded(insertion),
                completeness=None if (error := completeness[m]) is None else _round(error),
                object_mass=mass,
                pointing=pointing,
                categories=categories,
                passes=tuple(c for c in CHECKS if verdicts.get(c) is True),
                fails=tuple(c for c in CHECKS if verdicts.get(c) is False),
            )
        )
    object_chance = None if masks is None else _round(float(area_share(masks[0]).float().mean()))
    return ReportCard(
        output=output.name,
        frames=frames.positions,
        randomised=layers,
        baseline=f"Gaussian blur, sigma {settings.report_blur:g} px",
        steps=steps,
        random_deletion_auc=_round(float(random_deletion.mean())),
        random_insertion_auc=_round(float(random_insertion.mean())),
        centre_deletion_auc=_round(float(centre_deletion.mean())),
        centre_insertion_auc=_round(float(centre_insertion.mean())),
        random_frame_deletion=_rounded(random_deletion),
        random_frame_insertion=_rounded(random_insertion),
        object_chance=object_chance,
        objects=source,
        sanity_threshold=settings.sanity_threshold,
        rows=tuple(rows),
    )


def _maps(
    chosen: CardMethod,
    explained: ExplainedModel,
    inputs: torch.Tensor,
    output: Output,
    actions: torch.Tensor,
    size: tuple[int, int],
    complete: bool = False,
) -> tuple[torch.Tensor, float | None]:
    """(N, H, W) maps at the input's size, and, with ``complete`` for a method declaring it at a
    layer, its mean relative completeness error."""
    site = None if chosen.layer is None else chosen.layer.name
    values, memory = chosen.method.attribute_with_memory(explained, inputs, [output], site, actions=actions)
    values = values[0].float()
    error = None
    if complete and chosen.method.info.complete and site is not None:
        total = values.flatten(1).sum(-1) + (0 if memory is None else memory[0])
        change = (
            output_at(explained, inputs, site, 1.0, [output], actions)
            - output_at(explained, inputs, site, 0.0, [output], actions)
        )[0]
        error = float(((total - change).abs() / change.abs().clamp_min(1e-12)).mean())
    maps = values.sum(1) if values.ndim == 4 else values
    if tuple(maps.shape[-2:]) != size:
        maps = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return maps, error


def _scalar(explained: ExplainedModel, output: Output) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """(input rows, the frame of each) -> the output's value for each row (a fixed combination of
    the output vector; a recurrent model reads each row's frame's state)."""
    weights = torch.tensor(output.weights)

    def forward(rows: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        return (explained.on(frames).forward(rows).float() * weights.to(rows.device)).sum(-1)

    return forward


def _object_masks(
    objects: GameObjects | None, size: tuple[int, int]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]] | None:
    if objects is None:
        return None
    shape = (int(size[0]), int(size[1]))
    everything = boxes_to_masks(objects.boxes, objects.valid, objects.screen, shape, objects.crop_rows)
    by_category = category_masks(
        objects.boxes, objects.valid, objects.categories, objects.screen, shape, objects.crop_rows
    )
    return everything, by_category


def _localisation(
    maps: torch.Tensor, masks: torch.Tensor, present: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: positive mass share on ``masks``, whether the peak hits them, their area share;
    with ``present``, only the frames where the mask is not empty."""
    keep = masks.flatten(1).any(1) if present else torch.ones(len(masks), dtype=torch.bool)
    maps, masks = maps[keep], masks[keep]
    return (
        mass_share(maps, masks).numpy(),
        pointing_hits(maps, masks).float().numpy(),
        area_share(masks).float().numpy(),
    )


def _better(difference: np.ndarray) -> bool | None:
    """True when the 95% interval of the mean of paired ``difference`` lies above 0, False
    otherwise; None without two finite values."""
    finite = difference[np.isfinite(difference)]
    if len(finite) < 2:
        return None
    return bool(finite.mean() - Z95 * finite.std(ddof=1) / math.sqrt(len(finite)) > 0)


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return _round(float(finite.mean())) if len(finite) else None


def _unit(maps: torch.Tensor) -> torch.Tensor:
    """Each map scaled to [0, 1] (SSIM compares structure, not scale)."""
    flat = maps.flatten(1)
    low, high = flat.min(1).values, flat.max(1).values
    return ((flat - low[:, None]) / (high - low).clamp_min(1e-12)[:, None]).reshape(maps.shape)


def _round(value: float) -> float:
    return float(f"{value:.5g}")


def _rounded(values: torch.Tensor | np.ndarray) -> tuple[float, ...]:
    return tuple(_round(float(v)) for v in np.asarray(values).reshape(-1))


def format_card(card: ReportCard) -> str:
    """The card as aligned text: a row per method, the references under the table."""

    def number(value: float | None, digits: int = 3) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    def mark(row: ReportRow, check: str) -> str:
        return "pass" if check in row.passes else "FAIL" if check in row.fails else ""

    header = (
        "method",
        "site",
        "sanity drop",
        "ssim",
        "deletion",
        "insertion",
        "objects/chance",
        "pointing",
        "complete.",
    )
    lines = [header]
    for row in card.rows:
        objects = "n/a"
        if row.object_mass is not None and card.object_chance is not None:
            objects = f"{row.object_mass:.2f}/{card.object_chance:.2f}"
        lines.append(
            (
                row.title,
                row.site,
                f"{1 - row.sanity_spearman[-1]:.2f} {mark(row, 'sanity')}" if row.sanity_spearman else "n/a",
                f"{row.sanity_ssim[-1]:.2f}" if row.sanity_ssim else "n/a",
                f"{row.deletion_auc:.3f} {mark(row, 'deletion')}",
                f"{row.insertion_auc:.3f} {mark(row, 'insertion')}",
                f"{objects} {mark(row, 'objects')}".strip(),
                f"{number(row.pointing, 2)} {mark(row, 'pointing')}".strip(),
                f"{number(row.completeness)} {mark(row, 'completeness')}".strip(),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    text += [
        "",
        f"{len(card.frames)} frames, output {card.output}; deletion and insertion put in a {card.baseline}",
        f"references: random map deletion {card.random_deletion_auc:.3f}, insertion {card.random_insertion_auc:.3f}; "
        f"centre-bias map deletion {card.centre_deletion_auc:.3f}, insertion {card.centre_insertion_auc:.3f}",
        f"sanity drop: 1 - Spearman of |map| with the original after re-initialising all {len(card.randomised)} "
        f"layers top-down (ssim: the same maps' SSIM); pass above {1 - card.sanity_threshold:g}",
        "objects: share of the positive mass on game objects"
        + (
            f" (chance: their share of the frame, {card.object_chance:.3f}); {card.objects}"
            if card.object_chance is not None
            else f": {card.objects or 'no ground truth for this environment'}"
        ),
        "pass/FAIL: the paired per-frame difference from the reference is significant (95%) on the faithful side",
    ]
    return "\n".join(text)
