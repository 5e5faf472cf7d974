"""Whether a run fits in this machine's memory and disk, judged from its config before any work.

Sizes on the command line are not bounded, and a run holds arrays whose size is the product of
several of them (trajectories are ``num_envs x num_steps`` frames, a layer's fit holds its
activation for every observation of the set, ...). :func:`estimate` adds up, from the config and
the agent's shapes alone, what each job holds at its peak and what the cache and the output folder
will hold; :func:`check_resources` compares that with what this machine has and refuses, in one
line that names what to lower and how far, a run that cannot fit. No loop runs over a size, so it
takes milliseconds whatever the sizes are.

Memory, for the processes on this machine: a fixed baseline each (:data:`BASELINE_BYTES`:
interpreter, torch, scikit-learn, the environment library) and a model per lane, plus the sum
of the largest job peaks that the lanes can run at once, or the export's peak if larger. A
job's peak is the largest of its stages, each the arrays alive together (read off :mod:`..jobs`),
times :data:`ALLOCATOR_FACTOR`:

* trajectories: every frame, twice while saved (``dataclasses.asdict`` copies the arrays);
* observation-set part: its frames and environments;
* layer fit: the observation set as uint8 and as float input, the layer's value attribution
  (twice while its chunks are joined), the NMF rows, the activations, the feature pictures;
* attribution: the whole trajectories (each lane loads its own copy), one trajectory as input,
  every output's attribution (twice while joined), the NMF transform's float64 maps;
* export: the trajectories, one (layer, trajectory)'s maps of every output, dequantised.

Integrated gradients add their working chunk: the graph above the layer (the chunk is sized to
:data:`DEFAULT_MEMORY_BUDGET`, or one frame if a frame alone is larger) and the forward pass
below it, which the chunk's size does not count (at layer 3c a chunk is ~300 frames of 1a-sized
activations). Disk: the output folder holds quantised payloads (deflate assumed to save only
base85's 5/4, an upper bound: trained agents' maps deflate 3.7x, a short run's 1.4x) and PNG images
(:data:`PNG_RATIO`); the cache the same payload scripts and deflated ``.npz`` rollouts and fits
(frames and pictures taken to shrink as PNG does).

Measured against real runs of the bundled agent (peak RSS, output and cache bytes) the estimate
was 1.2x to 1.6x the memory, 2.3x to 2.9x the output and 1.9x to 2.8x the cache.

The modules, each importing only those before it: :mod:`.shapes` (what is read off the agent and
config), :mod:`.sizes` (each job's and product's bytes), :mod:`.estimate` (their sum for a run),
:mod:`.check` (the verdict against this machine, whose readings it looks up in its own namespace:
patch ``check.available_memory``, not this package's).
"""

from ...common.machine import available_memory, free_disk, resident_memory
from ..parallel import lanes_per_process
from .check import MAX_PLANNED_JOBS, check_resources
from .estimate import ALLOCATOR_FACTOR, BASELINE_BYTES, Estimate, estimate
from .shapes import ATARI_SCREEN, FULL_RES, LayerShape, Shapes, shapes_of
from .sizes import ARRAY_OVERHEAD, ENV_BYTES, FILE_OVERHEAD, IG_WORKING_FACTOR, PNG_RATIO, Part

__all__ = [
    "ALLOCATOR_FACTOR",
    "ARRAY_OVERHEAD",
    "ATARI_SCREEN",
    "BASELINE_BYTES",
    "ENV_BYTES",
    "FILE_OVERHEAD",
    "FULL_RES",
    "IG_WORKING_FACTOR",
    "MAX_PLANNED_JOBS",
    "PNG_RATIO",
    "Estimate",
    "LayerShape",
    "Part",
    "Shapes",
    "available_memory",
    "check_resources",
    "estimate",
    "free_disk",
    "lanes_per_process",
    "resident_memory",
    "shapes_of",
]
