"""The randomisation test's cascade and its similarities, against scipy and skimage."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from skimage.metrics import structural_similarity
from torch import nn

from understanding_rl_vision.evaluation import randomisable_layers, randomised_models, spearman, ssim


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 5),
    )


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 6, (8, 4, 5)).astype(np.float32)  # many ties
    b = rng.integers(0, 4, (8, 4, 5)).astype(np.float32)
    b[3] = rng.random((4, 5))  # one row without ties
    ours = spearman(torch.from_numpy(a), torch.from_numpy(b))
    reference = [scipy.stats.spearmanr(x.ravel(), y.ravel())[0] for x, y in zip(a, b)]
    assert ours.shape == (8,) and ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-6)


def test_spearman_extremes_and_constant_rows():
    x = torch.randn(3, 7, 7)
    np.testing.assert_allclose(spearman(x, x).numpy(), 1.0, atol=1e-6)
    np.testing.assert_allclose(spearman(x, -x).numpy(), -1.0, atol=1e-6)
    np.testing.assert_allclose(spearman(x, x.exp()).numpy(), 1.0, atol=1e-6)  # ranks only: any increasing map
    constant = torch.ones(3, 7, 7)
    assert spearman(x, constant).tolist() == [0.0, 0.0, 0.0]  # scipy: NaN
    with pytest.raises(ValueError, match="equal shapes"):
        spearman(x, x[:, :6])


@pytest.mark.parametrize("data_range", [1.0, 2.5, "per-pair", None])
def test_ssim_matches_skimage(data_range):
    rng = np.random.default_rng(2)
    a = rng.random((4, 12, 15))
    b = 0.6 * a + 0.4 * rng.random((4, 12, 15))
    spans = np.array([3.0, 1.0, 0.5, 2.0])
    given = torch.from_numpy(spans) if data_range == "per-pair" else data_range
    ours = ssim(torch.from_numpy(a).float(), torch.from_numpy(b).float(), given)
    reference = []
    for i, (x, y) in enumerate(zip(a, b)):
        if data_range == "per-pair":
            span = spans[i]
        elif data_range is None:
            span = max(x.max(), y.max()) - min(x.min(), y.min())
        else:
            span = data_range
        reference.append(structural_similarity(x, y, data_range=span))
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-5)
    np.testing.assert_allclose(ssim(torch.from_numpy(a), torch.from_numpy(a)).numpy(), 1.0, atol=1e-6)


def test_ssim_refuses_small_maps():
    with pytest.raises(ValueError, match="at least 7x7"):
        ssim(torch.rand(2, 6, 9), torch.rand(2, 6, 9))


def test_cascade_randomises_one_more_layer_each_step_and_leaves_the_model_alone():
    model = tiny_net().train()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    layers = randomisable_layers(model)
    assert layers == ("5", "2", "0")  # the modules with reset_parameters, output first
    previous = {name: value.clone() for name, value in model.state_dict().items()}
    changed: set[str] = set()
    rng_state = torch.random.get_rng_state()
    yielded = []
    for name, randomised in randomised_models(model, seed=7):
        assert randomised is not model and not randomised.training
        yielded.append(name)
        state = randomised.state_dict()
        now = {key.rpartition(".")[0] for key in state if not torch.equal(state[key], previous[key])}
        assert now == {name}, f"step {name} changed {now}"
        changed |= now
        layer_keys = [key for key in state if key.rpartition(".")[0] in changed]
        assert all(not torch.equal(state[key], before[key]) for key in layer_keys)  # still randomised
        assert all(torch.equal(state[key], before[key]) for key in state if key not in layer_keys)
        previous = {key: value.clone() for key, value in state.items()}
    assert tuple(yielded) == layers
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # the caller's generator is untouched
    assert model.training
    assert all(torch.equal(value, before[name]) for name, value in model.state_dict().items())


def test_cascade_draws_are_seeded():
    model = tiny_net()
    first = [{k: v.clone() for k, v in m.state_dict().items()} for _, m in randomised_models(model, seed=3)]
    second = [{k: v.clone() for k, v in m.state_dict().items()} for _, m in randomised_models(model, seed=3)]
    other = [{k: v.clone() for k, v in m.state_dict().items()} for _, m in randomised_models(model, seed=4)]
    assert all(torch.equal(a[k], b[k]) for a, b in zip(first, second) for k in a)
    assert not torch.equal(first[-1]["0.weight"], other[-1]["0.weight"])
    torch.manual_seed(3 + 1)  # Quantus' draw: the layer's reset right after seeding with seed + 1
    expected = nn.Linear(4 * 8 * 8, 5)
    assert torch.equal(first[0]["5.weight"], expected.weight.detach())
