"""CAM (Zhou et al. 2016). https://arxiv.org/abs/1512.04150

For a head that is global average pooling followed by one linear layer, the target class's
classifier weights weight the last conv block's channels; signed (negative evidence kept).
Any other head is a 400: it has no class activation map in this sense.
"""

from __future__ import annotations

import torch
from torch import nn

from ...errors import BadRequest
from ..base import Job
from .base import CamMethod


def linear_head(job: Job) -> nn.Linear:
    """The classifier, if the CAM layer's global average pool is exactly its input."""
    head = job.model.layers.feature.module
    reason = None
    if not isinstance(head, nn.Linear) or not job.model.layers.feature.use_input:
        reason = "the feature layer is not the input of a linear classifier"
    elif job.layer is None or job.layer.name != job.model.layers.cam.name:
        reason = "CAM uses the auto-discovered last conv block; 'layer' is not supported"
    elif not job.model.layers.cam_feeds_head:
        reason = "the head between the last conv block and the classifier is not global pooling + linear"
    if reason:
        raise BadRequest(f"method 'cam' needs a global-average-pool + linear head: {reason}; "
                         "use gradcam, gradcam_pp, scorecam or layercam")
    return head


class Cam(CamMethod):
    name = "cam"
    signed = True
    uses_gradients = False

    def weights(self, job: Job, activations: torch.Tensor, grads: None) -> torch.Tensor:
        return linear_head(job).weight[job.targets].float()
