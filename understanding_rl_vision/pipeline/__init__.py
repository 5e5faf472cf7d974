"""From a loaded agent to the output folder: plan the jobs (:mod:`.plan`), compute each product
into the cache (:mod:`.jobs`, shared across MPI ranks by :mod:`.parallel`), then export the page
from the cache (:mod:`.output`, :mod:`.publish`). :func:`run_pipeline` runs the stages in order."""

from ..common.files import file_digest
from .cache import Cache
from .plan import Plan, make_plan
from .runner import RunOptions, default_cache_dir, run_pipeline

__all__ = ["Cache", "Plan", "RunOptions", "default_cache_dir", "file_digest", "make_plan", "run_pipeline"]
