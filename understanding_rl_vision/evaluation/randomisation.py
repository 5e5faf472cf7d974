"""The model-parameter randomisation test (Adebayo et al. 2018) and the similarities it reports.

A map that explains the model should change when the model's weights are replaced by random ones.
:func:`randomised_models` randomises the layers one by one from the output down (the *cascading*
test), in Quantus' convention (``MPRT(layer_order="top_down")``, ``get_random_layer_generator``) so
that its scores can be checked against Quantus':

* the layers are the modules of ``named_modules()`` that have ``reset_parameters``, reversed;
* before each layer, the global torch generator is seeded with ``seed + 1`` (the same seed for every
  layer, as Quantus does) and the layer's ``reset_parameters()`` draws its new weights.

Unlike Quantus, the caller's generator state is restored after each draw, so evaluating a model
leaves the rest of a program's random numbers as they were.

:func:`spearman` and :func:`ssim` compare the original maps with those of a randomised model, one
pair per frame, in batches (no loop over frames): Spearman's rank correlation as
``scipy.stats.spearmanr`` (Quantus' default ``correlation_spearman``), and the structural
similarity as ``skimage.metrics.structural_similarity`` with Quantus' settings (its ``ssim``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

SSIM_WINDOW = 7
"""skimage's window when ``win_size`` is None and weights are uniform (Quantus' call)."""
SSIM_K1, SSIM_K2 = 0.01, 0.03
"""skimage's (and Wang et al. 2004's) stabilising constants, as fractions of the data range."""


def randomisable_layers(model: nn.Module) -> tuple[str, ...]:
    """The names of the layers :func:`randomised_models` randomises, in its order (output first)."""
    return tuple(name for name, module in reversed(list(model.named_modules())) if hasattr(module, "reset_parameters"))


def randomised_models(model: nn.Module, seed: int = 42) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(layer name, model)`` with one more layer randomised each time, from the output down.

    The model yielded is one deep copy, in eval mode, randomised further at each step (cumulative:
    the k-th yield has the first k layers of :func:`randomisable_layers` reset); use it before
    advancing. ``model`` itself is never changed. Each layer's draw is ``torch.manual_seed(seed +
    1)`` then ``reset_parameters()``, as Quantus' ``get_random_layer_generator``, so the weights are
    Quantus' own; the caller's generator state (CPU and the model's CUDA devices) is restored after.
    """
    randomised = copy.deepcopy(model).eval()
    modules = dict(randomised.named_modules())
    devices = sorted({p.device.index or 0 for p in randomised.parameters() if p.device.type == "cuda"})
    for name in randomisable_layers(randomised):
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed + 1)
            modules[name].reset_parameters()
        yield name, randomised


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """(N, F) -> (N, F) float64 1-based ranks of each row, ties given their average rank (scipy's
    ``rankdata``): in sorted order, a tie group runs from its first to its last position."""
    n, f = x.shape
    values, order = torch.sort(x, dim=1, stable=True)
    position = torch.arange(f, device=x.device).expand(n, f)
    starts = torch.ones_like(values, dtype=torch.bool)
    starts[:, 1:] = values[:, 1:] != values[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, position, 0).cummax(dim=1).values
    last = torch.where(ends, position, f).flip(1).cummin(dim=1).values.flip(1)
    average = (first + last).double() / 2 + 1
    return torch.empty_like(average).scatter_(1, order, average)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, ...) x (N, ...) -> (N,): Spearman's rank correlation of each pair of rows, flattened.

    Ties take their average rank, as ``scipy.stats.spearmanr``. A row whose values are all equal has
    no ranking: its correlation is 0 here (scipy gives NaN), so that means over frames stay defined.
    Ranks are summed in float64 (exact for any map size); the result is float32.
    """
    if a.shape != b.shape:
        raise ValueError(f"spearman compares equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    ra = _ranks(a.detach().flatten(1))
    rb = _ranks(b.detach().flatten(1))
    ra = ra - ra.mean(dim=1, keepdim=True)
    rb = rb - rb.mean(dim=1, keepdim=True)
    scale = (ra.square().sum(dim=1) * rb.square().sum(dim=1)).sqrt()
    rho = (ra * rb).sum(dim=1) / scale.clamp(min=torch.finfo(torch.float64).tiny)
    return torch.where(scale > 0, rho, torch.zeros_like(rho)).float()


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float | torch.Tensor | None = 1.0) -> torch.Tensor:
    """(N, H, W) x (N, H, W) -> (N,): the mean structural similarity of each pair of maps.

    As ``skimage.metrics.structural_similarity(a, b, data_range=...)`` with its defaults, which is
    what Quantus' ``ssim`` calls: uniform 7x7 windows, sample covariances (x 49/48), ``K1 = 0.01``,
    ``K2 = 0.03``, the mean over windows lying wholly inside the map (skimage crops the 3-pixel border
    its filter padded, so the padding never counts). ``data_range`` is one value, one per pair (N,),
    or None for Quantus' choice: each pair's ``max - min`` over both maps. Maps need H, W >= 7; a
    pair of equal constant maps with a zero range has no defined value (NaN, as skimage).
    """
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(f"ssim compares (N, H, W) pairs, got {tuple(a.shape)} and {tuple(b.shape)}")
    if min(a.shape[1:]) < SSIM_WINDOW:
        raise ValueError(f"ssim needs maps of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(a.shape[1:])}")
    x = a.detach().double().unsqueeze(1)
    y = b.detach().double().unsqueeze(1)
    if data_range is None:
        both = torch.cat([x.flatten(1), y.flatten(1)], dim=1)
        span = both.amax(dim=1) - both.amin(dim=1)
    else:
        span = torch.as_tensor(data_range, dtype=torch.float64, device=x.device).expand(len(x))
    span = span.view(-1, 1, 1, 1)
    c1, c2 = (SSIM_K1 * span) ** 2, (SSIM_K2 * span) ** 2

    def mean(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, SSIM_WINDOW, stride=1)  # only whole windows: skimage's crop

    ux, uy = mean(x), mean(y)
    cov_norm = SSIM_WINDOW**2 / (SSIM_WINDOW**2 - 1)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(dim=1).float()
