"""The error of attribution payloads against the float maps they encode, in units of the page's
display scale (issue 20: the 99th percentile must stay within 2%).

    .venv/bin/python benchmarks/payload_error.py CACHE_DIR [--attr-policy] [--frames 128]

CACHE_DIR is the cache of a default-size run of the bundled agent (``run bundled``; with
``--attr-policy`` if given here). For layers 1a and 2a and trajectories 0 and 5, integrated gradients
are computed again, reduced to the layer's NMF features, encoded as the job would
(:func:`~understanding_rl_vision.pipeline.payloads.channel_scripts`) and decoded as the page does;
the 99th percentile of |decoded - float| is divided by the display scale the page computes from the
decoded maps (the 99th percentile of their nonzero values).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from understanding_rl_vision.agents import load_agent
from understanding_rl_vision.attribution import explain_agent
from understanding_rl_vision.common.files import file_digest
from understanding_rl_vision.config import RunConfig
from understanding_rl_vision.contract import AttributionPayload
from understanding_rl_vision.contract.codec import from_json
from understanding_rl_vision.contract.reader import parse_envelope
from understanding_rl_vision.demo import bundled_agent_path
from understanding_rl_vision.pipeline import jobs
from understanding_rl_vision.pipeline.cache import Cache
from understanding_rl_vision.pipeline.payloads import channel_scripts
from understanding_rl_vision.pipeline.plan import make_plan
from understanding_rl_vision.reduction import ChannelReducer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", help="the cache folder of a default-size run of the bundled agent")
    parser.add_argument("--attr-policy", action="store_true", help="explain every logit and group too")
    parser.add_argument("--frames", type=int, default=128, help="frames of each trajectory")
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = bundled_agent_path()
    assert path is not None
    agent, digest = load_agent(path), file_digest(path)
    plan = make_plan(agent, RunConfig().replace(attr_policy=args.attr_policy), digest)
    cache = Cache(args.cache, digest)
    trajectories = jobs.load_trajectories(cache, plan)
    explained = explain_agent(agent)
    planned = plan.methods[0]
    chosen = explained.outputs([plan.outputs[o] for o in planned.outputs])
    ratios = []
    for site in (0, 2):
        reducer = ChannelReducer.from_components(jobs.load_fit(cache, plan.fit(site)).components, plan.config.reduction)
        for t in (0, 5):
            inputs = agent.preprocess(trajectories.observations[t][: args.frames])
            actions = trajectories.actions[t][: args.frames]
            values, _ = jobs.attribute(explained, inputs, planned.method, plan.layers[site], chosen, actions)
            maps = tuple(reducer.transform(v) for v in values)
            scripts = channel_scripts(plan, plan.attribution(0, site, t), maps, None)
            for text, true in zip(scripts.texts.values(), maps):
                payload = from_json(AttributionPayload, parse_envelope(text.decode("ascii"))[1])
                decoded = np.concatenate([payload.positive.ravel(), payload.negative.ravel()])
                exact = np.concatenate([true.positive.ravel(), true.negative.ravel()])
                shown = np.percentile(decoded[decoded > 0], 99)
                ratios.append(float(np.percentile(np.abs(decoded - exact), 99) / shown))
    print(f"{len(ratios)} payloads: p99 error / display scale median {np.median(ratios):.4f}, worst {max(ratios):.4f}")
    print(f"RESULT payload_error payloads={len(ratios)} p99_median={np.median(ratios):.4f} p99_worst={max(ratios):.4f}")


if __name__ == "__main__":
    main()
