"""Importing the reference libraries the tests and benchmarks compare against.

pytorch-grad-cam (PyPI ``grad-cam``) 1.5.7 depends on torchvision, but the torchvision release that
pairs with our torch (0.28.0 for torch 2.13.0+cpu) fails at import on this CPU build with
``RuntimeError: operator torchvision::nms does not exist``. grad-cam is therefore installed with
``--no-deps`` and no torchvision. Its CAM classes (``GradCAM``, ``GradCAMPlusPlus``, ``HiResCAM``,
base_cam.py, activations_and_gradients.py) never call torchvision; the package only imports it,
for code we do not use:

* ``pytorch_grad_cam/utils/image.py``: ``from torchvision.transforms import Compose, Normalize,
  ToTensor`` (used by ``preprocess_image``, an ImageNet helper);
* ``pytorch_grad_cam/sess.py``: ``from torchvision.transforms.functional import resize`` (SESS's
  multi-scale windows);
* ``pytorch_grad_cam/utils/model_targets.py``: ``import torchvision`` (``torchvision.ops.box_iou``
  in ``FasterRCNNBoxScoreTarget``, a detection target).

:func:`import_pytorch_grad_cam` therefore imports it behind a stand-in ``torchvision`` when the real
one cannot be imported. Test-only: nothing in ``understanding_rl_vision`` imports either library.

Also here, shared by ``tests/attribution/test_cam.py`` and ``benchmarks/methods.py``: the agent
wrapped as a pytorch-grad-cam user wraps it (:class:`OutputVector`), and the library's map read
before its upsampling and min-max scaling (:func:`cam_before_scaling`).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any, NoReturn

import numpy as np
import torch

_STAND_IN_NAMES: dict[str, tuple[str, ...]] = {
    "torchvision": (),
    "torchvision.transforms": ("Compose", "Normalize", "ToTensor"),
    "torchvision.transforms.functional": ("resize",),
    "torchvision.ops": ("box_iou",),
}
"""Every module and name pytorch-grad-cam 1.5.7 touches at import (``box_iou`` only when called)."""


def _unavailable(qualified: str) -> Callable[..., NoReturn]:
    def unavailable(*args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError(
            f"{qualified} belongs to the test-only torchvision stand-in (tests/reference_libraries.py): "
            "torchvision itself is not importable here, so this part of pytorch-grad-cam cannot run"
        )

    unavailable.__name__ = unavailable.__qualname__ = qualified.rsplit(".", 1)[-1]
    return unavailable


def _stand_in_torchvision() -> dict[str, types.ModuleType]:
    """The stand-in modules by name: packages linked to their parents, each name a callable (also
    used as a class, ``Compose([...])``) that raises :class:`NotImplementedError`."""
    modules: dict[str, types.ModuleType] = {}
    for name, attributes in _STAND_IN_NAMES.items():
        module = types.ModuleType(name, "Test-only stand-in for torchvision; see tests/reference_libraries.py.")
        module.__path__ = []  # a package, so its submodules resolve
        module.__dict__["__stand_in__"] = True  # what uses_stand_in looks for
        for attribute in attributes:
            setattr(module, attribute, _unavailable(f"{name}.{attribute}"))
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(modules[parent], child, module)
        modules[name] = module
    return modules


INSTALL_HINT = (
    "pytorch-grad-cam is not installed: pip install --no-deps grad-cam==1.5.7 ttach==0.0.3 "
    "(its other dependencies: opencv-python-headless, scikit-learn, scipy, matplotlib, tqdm, Pillow)"
)


def import_pytorch_grad_cam() -> types.ModuleType:
    """The ``pytorch_grad_cam`` module, imported behind the torchvision stand-in if need be.

    With an importable torchvision it is used as is. Otherwise the stand-in is put in
    ``sys.modules`` only while pytorch-grad-cam imports (every one of its modules is imported by its
    ``__init__``, and keeps references to the stand-in names it took), then removed: later
    ``import torchvision`` elsewhere in the process fails as before.
    """
    if "pytorch_grad_cam" in sys.modules:
        return sys.modules["pytorch_grad_cam"]
    try:
        import torchvision  # noqa: F401
    except Exception:  # ModuleNotFoundError, or the RuntimeError above from a broken install
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]  # a half-imported torchvision
        stand_in = _stand_in_torchvision()
        sys.modules.update(stand_in)
        try:
            return _import()
        finally:
            for name in stand_in:
                sys.modules.pop(name, None)
    return _import()


def _import() -> types.ModuleType:
    try:
        import pytorch_grad_cam
    except ModuleNotFoundError as error:
        if error.name not in ("pytorch_grad_cam", "ttach"):
            raise
        raise ModuleNotFoundError(INSTALL_HINT, name=error.name) from error
    return pytorch_grad_cam


def uses_stand_in(module: types.ModuleType) -> bool:
    """Whether ``module`` (pytorch_grad_cam) was imported behind the torchvision stand-in."""
    model_targets = sys.modules.get(f"{module.__name__}.utils.model_targets")
    return bool(getattr(getattr(model_targets, "torchvision", None), "__stand_in__", False))


class OutputVector(torch.nn.Module):
    """An agent as a pytorch-grad-cam user wraps it: preprocessed frames in, (N, 1 + A) rows of
    ``[value, logit_0, ...]`` out (the order of ``explain_agent``'s entries); targets such as
    ``ClassifierOutputTarget(i)`` then select entry ``i`` of each frame's row."""

    def __init__(self, agent: Any):
        super().__init__()
        self.agent = agent
        self.model = agent.model  # its parameters and layers: pytorch-grad-cam reads the device, hooks a layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.agent.forward_preprocessed(x)
        return torch.cat([out.value.reshape(-1, 1), out.logits], dim=1)


def cam_before_scaling(peer: Any, input_tensor: torch.Tensor, targets: list) -> tuple[np.ndarray, np.ndarray]:
    """Run a pytorch-grad-cam CAM (one target layer) as a user does, ``peer(input_tensor, targets)``,
    and return what that call returned together with the map it computed at the layer's resolution,
    before rectification, upsampling and min-max scaling: (N, h, w).

    The call's result is resized to the input and min-max scaled per frame, which drops the scale
    we compare. Its hooks keep that call's activation and gradient (``peer.activations_and_grads``);
    the class's own ``get_cam_image`` (channel weights times activations summed over channels, or
    HiResCAM's override) on them is the map ``BaseCAM.compute_cam_per_layer`` then passes through
    ``np.maximum(cam, 0)`` and ``scale_cam_image``.
    """
    returned = peer(input_tensor=input_tensor, targets=targets)
    (activations,) = [a.numpy() for a in peer.activations_and_grads.activations]
    (gradients,) = [g.numpy() for g in peer.activations_and_grads.gradients]
    (layer,) = peer.target_layers
    raw = peer.get_cam_image(input_tensor, layer, targets, activations, gradients, eigen_smooth=False)
    return returned, raw
