"""Explanations: saliency maps and class activation maps, batched, hooks scoped to each call.

``METHODS`` maps each method name to a stateless strategy object (see ``base.Method``).
Adding a method is adding one file and one line here.
"""

from __future__ import annotations

from .base import Job, Method
from .cam.cam import Cam
from .cam.gradcam import GradCam
from .cam.gradcam_pp import GradCamPlusPlus
from .cam.layercam import LayerCam
from .cam.scorecam import ScoreCam
from .saliency.gradient import Gradient
from .saliency.guided_backprop import GuidedBackprop
from .saliency.input_x_gradient import InputXGradient
from .saliency.integrated_gradients import IntegratedGradients
from .saliency.lime import Lime
from .saliency.occlusion import Occlusion
from .saliency.smoothgrad import smoothgrad

METHODS: dict[str, Method] = {m.name: m for m in (
    Gradient(), smoothgrad(), GuidedBackprop(), IntegratedGradients(), InputXGradient(),
    Occlusion(), Lime(), Cam(), GradCam(), GradCamPlusPlus(), ScoreCam(), LayerCam())}

SALIENCY = tuple(n for n, m in METHODS.items() if m.family == "saliency")
CAM = tuple(n for n, m in METHODS.items() if m.family == "cam")

__all__ = ["CAM", "Job", "METHODS", "Method", "SALIENCY"]
