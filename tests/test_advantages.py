"""GAE against a hand-computed example and an independent closed-form implementation."""

import numpy as np
import pytest

from understanding_rl_vision.advantages import episode_ids, find_bookmarks, gae

REWARDS = np.array([[1.0, 0.0, 2.0, 0.0]])
VALUES = np.array([[0.5, 1.0, 0.0, 1.0]])
DONES = np.array([[False, True, False, False]])


def test_gae_hand_computed_original_convention():
    # gamma 0.9, lambda 0.5, worked by hand; the final step is 0 as in the original:
    # d2 = 2 + 0.9*1.0 - 0 = 2.9          A2 = 2.9
    # d1 = 0 + 0 (done) - 1.0 = -1.0      A1 = -1.0 (done cuts the recursion)
    # d0 = 1 + 0.9*1.0 - 0.5 = 1.4        A0 = 1.4 + 0.45 * -1.0 = 0.95
    advantages = gae(REWARDS, VALUES, DONES, gamma=0.9, lam=0.5)
    np.testing.assert_allclose(advantages, [[0.95, -1.0, 2.9, 0.0]], rtol=1e-6)
    assert advantages.dtype == np.float32


def test_gae_hand_computed_bootstrapped():
    # With V(s_T) = 2: A3 = 0 + 0.9*2 - 1 = 0.8, A2 = 2.9 + 0.45*0.8 = 3.26.
    advantages = gae(REWARDS, VALUES, DONES, gamma=0.9, lam=0.5, last_values=np.array([2.0]))
    np.testing.assert_allclose(advantages, [[0.95, -1.0, 3.26, 0.8]], rtol=1e-6)


def closed_form_gae(rewards, values, dones, gamma, lam, last_values):
    """A_t = sum_k (gamma*lam)^(k-t) [no done in t..k-1] delta_k, as one matrix product."""
    num_steps = rewards.shape[1]
    next_values = np.concatenate([values[:, 1:], last_values[:, None]], axis=1)
    deltas = rewards + (1 - dones) * gamma * next_values - values
    done_count = np.concatenate([np.zeros((len(dones), 1)), np.cumsum(dones, axis=1)], axis=1)
    t = np.arange(num_steps)[:, None]
    k = np.arange(num_steps)[None, :]
    # dones strictly before k and at or after t: done_count[k] - done_count[t]
    alive = (done_count[:, None, :num_steps] - done_count[:, :num_steps, None]) == 0
    weights = np.where(k >= t, (gamma * lam) ** np.clip(k - t, 0, None), 0.0) * alive
    return np.einsum("etk,ek->et", weights, deltas)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gae_matches_closed_form(seed):
    rng = np.random.default_rng(seed)
    shape = (5, 64)
    rewards = rng.normal(size=shape)
    values = rng.normal(size=shape)
    dones = rng.random(shape) < 0.08
    last_values = rng.normal(size=shape[0])
    ours = gae(rewards, values, dones, gamma=0.99, lam=0.95, last_values=last_values)
    reference = closed_form_gae(rewards, values, dones.astype(float), 0.99, 0.95, last_values)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


def test_episode_ids_restart_at_each_trajectory():
    firsts = np.array([[True, False, True, False], [False, False, False, True]])
    np.testing.assert_array_equal(episode_ids(firsts), [[0, 0, 1, 1], [2, 2, 2, 3]])


def test_bookmarks_pick_one_extreme_frame_per_episode():
    advantages = np.array(
        [
            [0.1, 5.0, 4.0, -1.0, -7.0, 0.0],  # episodes: frames 0-2, 3-5
            [3.0, -2.0, 6.0, 6.0, -3.0, 1.0],  # episodes: frames 0-1, 2-5
        ]
    )
    firsts = np.array(
        [
            [True, False, False, True, False, False],
            [True, False, True, False, False, False],
        ]
    )
    marks = find_bookmarks(advantages, firsts, count=3)
    # Episode maxima: 5.0 (0,1), 0.0 (0,5: not a success), 3.0 (1,0), 6.0 (1,2: earliest tie).
    assert [(b.trajectory, b.frame, b.advantage) for b in marks.high] == [
        (1, 2, 6.0),
        (0, 1, 5.0),
        (1, 0, 3.0),
    ]
    # Episode minima: 0.1 (0,0: not a failure), -7.0 (0,4), -2.0 (1,1), -3.0 (1,4).
    assert [(b.trajectory, b.frame, b.advantage) for b in marks.low] == [
        (0, 4, -7.0),
        (1, 4, -3.0),
        (1, 1, -2.0),
    ]


def test_bookmarks_at_most_one_per_episode_and_count_respected():
    rng = np.random.default_rng(0)
    advantages = rng.normal(size=(8, 512))
    firsts = rng.random((8, 512)) < 0.02
    marks = find_bookmarks(advantages, firsts, count=16)
    ids = episode_ids(firsts)
    for kind in (marks.high, marks.low):
        assert len(kind) == 16
        episodes = [ids[b.trajectory, b.frame] for b in kind]
        assert len(set(episodes)) == 16
        for b in kind:
            assert advantages[b.trajectory, b.frame] == b.advantage
    highs = [b.advantage for b in marks.high]
    assert highs == sorted(highs, reverse=True)
    # The top high bookmark is the global maximum.
    assert marks.high[0].advantage == advantages.max()
    assert marks.low[0].advantage == advantages.min()


def test_bookmarks_fewer_episodes_than_requested():
    advantages = np.array([[1.0, 2.0, 3.0]])
    marks = find_bookmarks(advantages, np.zeros((1, 3), bool), count=16)
    assert [(b.frame, b.advantage) for b in marks.high] == [(2, 3.0)]
    assert marks.low == ()  # no frame went worse than expected


def test_successes_are_positive_and_failures_negative():
    """With fewer episodes than bookmarks, an episode whose best frame is still below
    expectation must not be listed as an unexpected success (nor the reverse)."""
    advantages = np.array([[-1.0, -0.5, -2.0, 0.0], [0.5, 1.5, 0.25, 0.0]])
    marks = find_bookmarks(advantages, np.zeros((2, 4), bool), count=16)
    assert [(b.trajectory, b.frame, b.advantage) for b in marks.high] == [(1, 1, 1.5)]
    assert [(b.trajectory, b.frame, b.advantage) for b in marks.low] == [(0, 2, -2.0)]
    assert all(b.advantage > 0 for b in marks.high) and all(b.advantage < 0 for b in marks.low)
