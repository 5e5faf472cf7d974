"""The attention tree (seed 002) itself; peak detection and receptive fields have their own tests
(test_peaks.py, test_receptive_fields.py)."""

from __future__ import annotations

import dataclasses
import math
import statistics
import time

import pytest
import torch
from tree_nets import ACTIONS, LAYERS, NATURE_LAYERS, HandBuilt, hand_built_input

from understanding_rl_vision.agents import make_agent
from understanding_rl_vision.attribution.hooks import capture, hook_count
from understanding_rl_vision.attribution.receptive_fields import receptive_fields, tree_geometry
from understanding_rl_vision.attribution.tree import Trees, _contribution_maps, attention_tree
from understanding_rl_vision.errors import UserError


def test_hand_built_network_tree_is_the_one_computed_by_hand():
    model = HandBuilt()
    trees = attention_tree(model, hand_built_input(), ["mask", "relu2", "relu1"], count=2)
    # softmax of relu2's 9 scores: e^6, e^5, two e^1 and five e^0
    total = math.exp(6) + math.exp(5) + 2 * math.e + 5
    m00, m22 = math.exp(6) / total, math.exp(5) / total
    # slots: roots 0, 1; their children 2, 3 | 4, 5; grandchildren 6, 7 | 8, 9 | 10, 11 | 12, 13
    assert trees.layers == ("mask", "relu2", "relu1")
    assert trees.parent[0].tolist() == [-1, -1, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert trees.level[0].tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2]
    valid = [0, 1, 2, 4, 6, 7, 10]
    assert trees.valid[0].nonzero()[:, 0].tolist() == valid
    cells = list(zip(trees.y[0].tolist(), trees.x[0].tolist()))
    assert [cells[i] for i in valid] == [(0, 0), (2, 2), (0, 0), (2, 2), (2, 0), (0, 2), (4, 4)]
    expected = [
        m00,  # root: the mask at (0, 0)
        m22,  # root: the mask at (2, 2); (0, 2) and (2, 0) rise only 0.003 above their cols
        6 * m00 * (1 - m00),  # relu2 (0, 0) through the softmax; every other cell contributes negatively
        5 * m22 * (1 - m22),  # relu2 (2, 2)
        3.0,  # relu1 (2, 0) x weight 3 into relu2 (0, 0)
        2.0,  # relu1 (0, 2) x weight 2; relu1 (0, 0) x 1 comes third and count is 2
        5.0,  # relu1 (4, 4) x weight 1 into relu2 (2, 2), its only positive contribution
    ]
    torch.testing.assert_close(trees.contribution[0, valid], torch.tensor(expected), rtol=1e-5, atol=1e-7)
    invalid = [i for i in range(14) if i not in valid]
    assert trees.contribution[0, invalid].eq(0).all()
    # boxes: relu1 cells see 2x2 pixels, relu2 cells (and the mask) 6x6, in tenths of the 10x10 input
    tenths = (trees.boxes[0] * 10).round().long().tolist()
    assert [tenths[i] for i in valid] == [
        [0, 0, 6, 6],
        [4, 4, 10, 10],
        [0, 0, 6, 6],
        [4, 4, 10, 10],
        [4, 0, 6, 2],
        [0, 4, 2, 6],
        [8, 8, 10, 10],
    ]


# --------------------------------------------------------------------------------------------------
# Trees of real agents
# --------------------------------------------------------------------------------------------------


def agent_and_frames(architecture: str, frames: int = 4):
    agent = make_agent(architecture, None, (84, 84, 4), ACTIONS, seed=0)
    generator = torch.Generator().manual_seed(1)
    observations = torch.randint(0, 256, (frames, 84, 84, 4), dtype=torch.uint8, generator=generator)
    return agent, agent.preprocess(observations.numpy())


@pytest.fixture(scope="module", params=["attention", "fls"])
def grown(request):
    agent, inputs = agent_and_frames(request.param)
    model = agent.model
    model.train()  # the tree must use eval mode and hand the model back in training mode
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    trees = attention_tree(model, inputs, LAYERS[request.param])
    return request.param, model, inputs, trees, flags


def test_tree_shapes_and_structure(grown):
    architecture, _, _, trees, _ = grown
    slots = 3 + 9 + 27 + 81
    assert isinstance(trees, Trees) and trees.layers == LAYERS[architecture]
    for field in ("parent", "level", "y", "x"):
        assert getattr(trees, field).shape == (4, slots) and getattr(trees, field).dtype == torch.int64
    assert trees.contribution.dtype == torch.float32 and trees.valid.dtype == torch.bool
    assert trees.boxes.shape == (4, slots, 4) and trees.boxes.dtype == torch.float32
    sizes = [3, 9, 27, 81]
    assert trees.level[0].tolist() == [d for d, size in enumerate(sizes) for _ in range(size)]
    for i in range(slots):
        parent = int(trees.parent[0, i])
        if i < 3:
            assert parent == -1
        else:
            assert parent < i and trees.level[0, parent] == trees.level[0, i] - 1
    assert torch.equal(trees.parent, trees.parent[:1].expand(4, -1))  # fixed shape, the same for every frame
    children = trees.parent[:, 3:]
    assert not (trees.valid[:, 3:] & ~trees.valid.gather(1, children)).any()  # no child of an invalid node
    assert (trees.contribution[trees.valid] > 0).all()
    assert (trees.contribution[~trees.valid] == 0).all()
    for depth in range(4):  # the tree is not empty at any level
        assert trees.valid[trees.level == depth].any()


def test_tree_cells_and_boxes_follow_the_geometry(grown):
    architecture, model, _, trees, _ = grown
    shapes = {"attention.mask": (7, 7), "normalize": (7, 7), "relu3": (7, 7), "relu2": (9, 9), "relu1": (20, 20)}
    for depth, layer in enumerate(LAYERS[architecture]):
        at = (trees.level == depth) & trees.valid
        height, width = shapes[layer]
        assert (trees.y[at] < height).all() and (trees.x[at] < width).all()
        field = receptive_fields(model, layer, (84, 84))
        expected = field.boxes(trees.y[at], trees.x[at]).float() / 84
        torch.testing.assert_close(trees.boxes[at], expected)
    boxes = trees.boxes
    assert (boxes >= 0).all() and (boxes <= 1).all()
    real = boxes[trees.valid]
    assert (real[:, 0] < real[:, 2]).all() and (real[:, 1] < real[:, 3]).all()
    assert (boxes[~trees.valid] == 0).all()
    # the roots' boxes: relu3's 36-pixel fields, 8 apart; the FLS gate's two 3x3 convs add 2 cells a side
    grow = 16 if architecture == "fls" else 0
    roots = trees.valid[:, :3]
    ys, xs = trees.y[:, :3][roots], trees.x[:, :3][roots]
    expected = torch.stack([8 * ys - grow, 8 * xs - grow, 8 * ys + 36 + grow, 8 * xs + 36 + grow], 1).clamp(0, 84)
    torch.testing.assert_close(boxes[:, :3][roots] * 84, expected.float())
    # below the root, a layer depends on the one beneath only through its convolution's window, so a
    # child's cell lies in its parent's window and its box inside the parent's box; from the root
    # that holds for the FLS gate (convolutions) but not for the attention's softmax over locations
    first_checked = _first_slot(2 if architecture == "attention" else 1)
    for i in range(first_checked, boxes.shape[1]):
        parent = int(trees.parent[0, i])
        ok = trees.valid[:, i]
        inside = (boxes[ok, i, :2] >= boxes[ok, parent, :2]).all() and (boxes[ok, i, 2:] <= boxes[ok, parent, 2:]).all()
        assert inside, (i, parent)
    # the same in cells: (stride, first offset, last offset) of each level's window one layer down
    windows = {1: (1, -2, 2), 2: (1, 0, 2), 3: (2, 0, 3)}  # FLS gate 2 x (3x3, pad 1); conv3 3x3; conv2 4x4/2
    for depth, (stride, low, high) in windows.items():
        if depth == 1 and architecture == "attention":
            continue  # the softmax: any cell may contribute
        at = (trees.level == depth) & trees.valid
        parents = trees.parent[at]
        frames = at.nonzero()[:, 0]
        for cell in (trees.y, trees.x):
            offset = cell[at] - stride * cell[frames, parents]
            assert ((offset >= low) & (offset <= high)).all()
        assert at.any()


def test_contributions_are_activation_times_gradient_and_children_are_the_strongest(grown):
    architecture, model, inputs, trees, _ = grown
    layers = LAYERS[architecture]
    for frame in range(len(inputs)):
        with capture(model, layers) as captured, torch.enable_grad():
            model.eval()(inputs[frame : frame + 1])
        model.train()
        maps = [captured[layer] for layer in layers]  # (1, C, h, w) each
        roots = trees.valid[frame, :3].nonzero()[:, 0]
        for i in roots.tolist():
            value = maps[0][0].sum(0)[trees.y[frame, i], trees.x[frame, i]]
            torch.testing.assert_close(trees.contribution[frame, i], value.detach(), rtol=1e-5, atol=1e-7)
        for i in (trees.valid[frame] & (trees.level[frame] > 0)).nonzero()[:, 0].tolist():
            parent, depth = int(trees.parent[frame, i]), int(trees.level[frame, i])
            upper, lower = maps[depth - 1], maps[depth]
            value = upper[0, :, trees.y[frame, parent], trees.x[frame, parent]].sum()
            (gradient,) = torch.autograd.grad(value, lower, retain_graph=True)
            contribution = (gradient * lower)[0].sum(0).detach()
            cell = contribution[trees.y[frame, i], trees.x[frame, i]]
            torch.testing.assert_close(trees.contribution[frame, i], cell, rtol=1e-4, atol=1e-6)
            first_child = _first_slot(depth) + 3 * (parent - _first_slot(depth - 1))
            if i == first_child:  # the strongest child is the map's largest positive contribution
                torch.testing.assert_close(trees.contribution[frame, i], contribution.max(), rtol=1e-4, atol=1e-6)


def _first_slot(depth: int, count: int = 3) -> int:
    return sum(count ** (d + 1) for d in range(depth))


def test_batch_equals_frame_by_frame_and_chunks(grown):
    architecture, model, inputs, trees, _ = grown
    layers = LAYERS[architecture]
    for frame in range(len(inputs)):
        alone = attention_tree(model, inputs[frame : frame + 1], layers)
        for field in ("parent", "level", "y", "x", "valid"):
            assert torch.equal(getattr(alone, field)[0], getattr(trees, field)[frame]), field
        torch.testing.assert_close(alone.contribution[0], trees.contribution[frame], rtol=1e-5, atol=1e-8)
        torch.testing.assert_close(alone.boxes[0], trees.boxes[frame])
    chunked = attention_tree(model, inputs, layers, chunk_size=3)
    assert torch.equal(chunked.valid, trees.valid) and torch.equal(chunked.y, trees.y)
    torch.testing.assert_close(chunked.contribution, trees.contribution, rtol=1e-5, atol=1e-8)


def test_the_model_is_left_as_it_was(grown):
    _, model, _, _, flags = grown
    assert model.training and all(m.training for m in model.modules())
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks and not module._backward_hooks


def test_colouring_equals_one_pass_per_parent():
    agent, inputs = agent_and_frames("attention", frames=2)
    model = agent.model.eval()
    geometry = tree_geometry(model, NATURE_LAYERS)
    segment = geometry.segments[2]  # relu2 seen from relu1: a 4x4 window, stride 2, so 4 colours
    assert segment.local and (segment.jump, segment.size) == ((2, 2), (4, 4))
    assert not geometry.segments[0].local  # the softmax over locations couples every cell
    generator = torch.Generator().manual_seed(0)
    ys, xs = torch.randint(0, 9, (2, 27), generator=generator), torch.randint(0, 9, (2, 27), generator=generator)
    valid = torch.rand(2, 27, generator=generator) > 0.2
    frames = inputs.clone().requires_grad_(True)
    with capture(model, ["relu2", "relu1"]) as captured:
        model(frames)
    shared = _contribution_maps(captured["relu2"], captured["relu1"], ys, xs, valid, segment)
    unshared = dataclasses.replace(segment, local=False)
    separate = _contribution_maps(captured["relu2"], captured["relu1"], ys, xs, valid, unshared)
    torch.testing.assert_close(shared, separate, rtol=1e-5, atol=1e-6)
    assert shared[valid].flatten(1).abs().amax(1).gt(0).all()  # each valid parent's map has something in it


def test_scale_invariant_layers_have_no_children():
    """relu3 feeds the attention agent's mask only through a per-location L2 normalisation, so
    activation x gradient there is 0 in exact arithmetic; rounding noise must not make peaks."""
    agent, inputs = agent_and_frames("attention")
    trees = attention_tree(agent.model, inputs, NATURE_LAYERS)
    assert trees.valid[:, :3].any() and not trees.valid[:, 3:].any()
    normalised = attention_tree(agent.model, inputs, LAYERS["attention"])
    assert normalised.valid[:, 3:12].any()


def test_depth_zero_and_no_frames():
    agent, inputs = agent_and_frames("attention", frames=2)
    roots = attention_tree(agent.model, inputs, ["attention.mask"], count=2)
    assert roots.parent.shape == (2, 2) and roots.parent.eq(-1).all() and roots.level.eq(0).all()
    empty = attention_tree(agent.model, inputs[:0], NATURE_LAYERS, count=2)
    assert empty.parent.shape == (0, 2 + 4 + 8 + 16) and empty.boxes.shape == (0, 30, 4)


def test_impala_trunk_tree():
    agent = make_agent("attention", None, (64, 64, 3), ACTIONS, seed=0, trunk="impala")
    observations = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    layers = ["attention.mask", "normalize", "stacks.2.res0", "stacks.1.res1"]
    trees = attention_tree(agent.model, agent.preprocess(observations.numpy()), layers, count=2)
    assert trees.valid[:, :2].any() and trees.valid[trees.level == 3].any()
    for i in range(6, trees.parent.shape[1]):  # below the root, children's boxes lie in their parents'
        parent, ok = int(trees.parent[0, i]), trees.valid[:, i]
        assert (trees.boxes[ok, i, :2] >= trees.boxes[ok, parent, :2]).all()
        assert (trees.boxes[ok, i, 2:] <= trees.boxes[ok, parent, 2:]).all()
    assert hook_count(agent.model) == 0


def test_bad_arguments_are_user_errors_and_leave_no_hooks():
    agent, inputs = agent_and_frames("attention", frames=1)
    model = agent.model
    with pytest.raises(UserError, match="unknown layer"):
        attention_tree(model, inputs, ["attention.mask", "relu9"])
    with pytest.raises(UserError, match="does not feed"):
        attention_tree(model, inputs, ["attention.mask", "relu1", "relu2"])
    with pytest.raises(UserError, match="does not feed"):
        attention_tree(model, inputs, ["relu3", "attention.mask"])
    with pytest.raises(UserError, match=r"not a \(N, C, h, w\) map"):
        attention_tree(model, inputs, ["value", "relu3"])  # relu3 feeds the value, but the value is no map
    with pytest.raises(UserError, match="count"):
        attention_tree(model, inputs, NATURE_LAYERS, count=0)
    with pytest.raises(UserError, match="min_distance"):
        attention_tree(model, inputs, NATURE_LAYERS, min_distance=-1)
    with pytest.raises(UserError, match="at least its root"):
        attention_tree(model, inputs, [])
    model.train()
    with pytest.raises(RuntimeError):  # three channels where the model takes four: fails inside the forward
        attention_tree(model, inputs[:, :3], NATURE_LAYERS)
    assert hook_count(model) == 0 and model.training and all(p.requires_grad for p in model.parameters())


def test_one_frame_is_fast():
    """The tree of one frame, count 3 and three levels below the root, on the Nature attention agent."""
    agent, inputs = agent_and_frames("attention", frames=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine may be busy; one thread is the steadiest measure
    try:
        for _ in range(3):
            attention_tree(agent.model, inputs, LAYERS["attention"])
        times = []
        for _ in range(20):
            start = time.perf_counter()
            attention_tree(agent.model, inputs, LAYERS["attention"])
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    assert statistics.median(times) < 0.050
