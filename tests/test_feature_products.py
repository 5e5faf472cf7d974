"""Issue 5's stages composed on a real CoinRun agent: attribution -> NMF -> dataset examples ->
export, read back through the reader that mirrors the page."""

import numpy as np
import torch

from understanding_rl_vision.attribution import capture, explain_agent, integrated_gradients
from understanding_rl_vision.config import ObservationSetConfig, ReductionConfig, TrajectoryConfig
from understanding_rl_vision.export import (
    AttributionPayload,
    read_image,
    read_payload,
    write_feature,
    write_payload,
)
from understanding_rl_vision.features import feature_images
from understanding_rl_vision.reduction import ChannelReducer
from understanding_rl_vision.rollout import collect_observation_set, collect_trajectories


def test_coinrun_layer_2b_from_attribution_to_payloads_and_back(coinrun_agent, tmp_path):
    agent, layer = coinrun_agent, "stacks.1.res1"
    explained = explain_agent(agent)
    observation_set = collect_observation_set(agent, ObservationSetConfig(obs_num_envs=4, num_obs=6, obs_every=4),
                                              seed=1, progress=False)  # fmt: skip
    obs_inputs = agent.preprocess(observation_set)
    value = integrated_gradients(explained, obs_inputs, layer, explained.outputs("value")).values[0]
    reducer = ChannelReducer(ReductionConfig(nmf_features=4)).fit(value)
    assert reducer.components.shape == (4, 32)
    np.testing.assert_allclose(reducer.components.sum(1), 1.0, rtol=1e-5)

    with capture(agent.model, [layer]) as captured, torch.no_grad():
        explained.forward(obs_inputs)
    images = feature_images(observation_set, captured[layer], reducer.components)
    feature = images[0]
    written = write_feature(tmp_path, 0, 0, thumbnail=feature.thumbnail.image, popups=feature.popups)
    back = read_payload(tmp_path, written.key())
    np.testing.assert_array_equal(read_image(tmp_path, back.thumbnail), feature.thumbnail.image)
    for popup, original in zip(back.popups, feature.popups):
        np.testing.assert_array_equal(popup.grid, original.index_grid)
        np.testing.assert_array_equal(popup.tops, original.tops)
        np.testing.assert_array_equal(popup.lefts, original.lefts)
        assert (popup.patch_height, popup.patch_width) == original.cell_size
        np.testing.assert_array_equal(read_image(tmp_path, popup.image), original.image)

    trajectories = collect_trajectories(agent, TrajectoryConfig(num_envs=1, num_steps=6), seed=0, progress=False)
    outputs = explained.outputs(["value", "group:RIGHT"])
    attribution = integrated_gradients(explained, agent.preprocess(trajectories.observations[0]), layer, outputs)
    for o in range(len(outputs)):
        maps = reducer.transform(attribution.values[o])
        # Features plus residual give back each frame's channel sum of the attribution.
        channel_sum = attribution.values[o].sum(1).numpy()
        np.testing.assert_allclose(maps.net.sum(1) + maps.residual, channel_sum,
                                   atol=1e-5 * np.abs(channel_sum).max())  # fmt: skip
        payload = AttributionPayload(layer=0, trajectory=0, output=o, positive=maps.positive, negative=maps.negative,
                                     residual=maps.residual, totals=maps.totals, residual_totals=maps.residual_totals,
                                     display_scale=maps.scale)  # fmt: skip
        write_payload(tmp_path, payload.key(), payload)
        read = read_payload(tmp_path, payload.key())
        for name in ("positive", "negative", "residual"):
            original, decoded = getattr(maps, name), getattr(read, name)
            step = np.abs(original).max() / (127 if name == "residual" else 255)
            assert np.abs(decoded - original).max() <= step / 2 + 1e-6 * step, name
        np.testing.assert_allclose(read.totals, maps.totals, rtol=1e-6)
        assert read.display_scale == maps.scale
