"""An explanation video: one trajectory of the bundled CoinRun agent with its maps over every frame.

What it shows: ``rl_clarity.video`` computes a run of one trajectory (as ``rl_clarity.run`` would,
into a folder beside the video whose ``interface.html`` shows the same frames) and draws it into
an mp4: the frame, then one panel per method and output, each in its authors' look (Grad-CAM as a
jet heat map, perturbation saliency with the actor in blue and the critic in red), and a caption
with the frame number, the action, the value and the reward. Then ``from_run`` draws the same
run again as a looping GIF of perturbation saliency alone, computing nothing.

Needs: nothing beyond the package (PyAV writes the mp4, Pillow the GIF).

Time on 2 CPU cores: about 1 minute at full size (256 frames, layer 2b, Grad-CAM and perturbation
of the value, the action and the actor; a 4 MB mp4 and a 10 MB GIF); about 10 seconds with
RLV_EXAMPLE_QUICK=1 (16 frames).

    python examples/video.py                        # writes examples-output/video/coinrun.mp4, .gif
"""

from __future__ import annotations

from _quick import QUICK, output_dir

from understanding_rl_vision import rl_clarity
from understanding_rl_vision.demo import resolve_checkpoint

out = output_dir("video")
frames = 16 if QUICK else 256
size = dict(obs_num_envs=2, num_obs=4, obs_every=4, nmf_features=2, num_bookmarks=1) if QUICK else {}

mp4 = rl_clarity.video(
    resolve_checkpoint("bundled"),  # the demo's CoinRun agent, shipped with the package
    out / "coinrun.mp4",
    run_dir=out / "coinrun-run",  # the computed run; its page shows the same frames
    frames=frames,
    methods=("gradcam", "perturbation"),
    outputs=("value", "action", "actor"),  # actor: every logit as one vector, perturbation only
    layers=("2b",),  # where Grad-CAM reads the network
    fps=12,
    overwrite=True,  # replace the files this script wrote before (the run's cache is reused)
    progress=not QUICK,
    **size,
)
print(f"wrote {mp4.path}: {mp4.frames} frames of {mp4.size[1]}x{mp4.size[0]}, panels {', '.join(mp4.panels)}")

# The same run again, one method only, as a GIF: from_run reads the finished run's maps.
gif = rl_clarity.video(
    from_run=out / "coinrun-run",
    output=out / "coinrun.gif",
    methods=("perturbation",),
    overwrite=True,
    progress=not QUICK,
)
print(f"wrote {gif.path}: {gif.frames} frames, panels {', '.join(gif.panels)}")
