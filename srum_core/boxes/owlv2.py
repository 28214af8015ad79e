"""OWLv2 grounding as a box source (kind ``"grounding"``): open-vocabulary detection of the prompt's own objects.

The prompt is read by :func:`srum_core.prompt_parser.parse_objects` ("a green bench and a red car" → queries
"green bench", "red car"); boxes carry the query as label and the detector score as confidence. The model loads
lazily via ``from_pretrained`` on the first :meth:`Owlv2Grounding.propose` and is kept.

OWLv2 images are prepared here in torch rather than by transformers' OWLv2 image processors, which need scipy
(PIL backend) or torchvision, neither of them a project dependency. The steps are the processor's own, read
from its settings: rescale to [0, 1], pad to a square with 0 at the bottom/right, Gaussian anti-aliasing with
σ = max(0, (factor − 1) / 2), linear resize (half-pixel centres), normalise with its mean/std. Scipy's
"mirror" border and spline zoom are approximated by reflect padding and bilinear interpolation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..device import resolve_device
from ..prompt_parser import parse_objects
from ..types import Region
from .geometry import as_rgb, clamp_box, nms


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(1, C, H, W)`` with reflect borders; identity for ``sigma <= 0``."""
    if sigma <= 0:
        return x
    radius = max(1, int(4.0 * sigma + 0.5))  # scipy truncates the kernel at 4σ
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    pad = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    if pad < radius:  # image smaller than the kernel: pad by replication instead of reflection
        x = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="replicate")
    else:
        x = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = torch.nn.functional.conv2d(x, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return torch.nn.functional.conv2d(x, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def owlv2_pixel_values(image: Any, image_processor: Any) -> torch.Tensor:
    """``(1, 3, S, S)`` float32 OWLv2 input for a PIL image, following ``image_processor``'s settings."""
    size = image_processor.size
    out_h, out_w = int(size["height"]), int(size["width"])
    x = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    x = x * float(image_processor.rescale_factor)
    side = max(x.shape[-2:])
    x = torch.nn.functional.pad(x, (0, side - x.shape[-1], 0, side - x.shape[-2]), value=0.0)
    factor = side / out_h
    x = _gaussian_blur(x, max(0.0, (factor - 1.0) / 2.0))
    x = torch.nn.functional.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False)
    x = x.clamp(0.0, 1.0)
    mean = torch.tensor(image_processor.image_mean, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(image_processor.image_std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


class Owlv2Grounding:
    """Find the prompt's objects with OWLv2; one query per parsed object (colour and attributes included).

    ``threshold``: minimum detector score (OWLv2's sigmoid class score). ``nms_iou``: overlapping boxes of the
    same query above this IoU are merged into the highest-scoring one. A prompt the parser finds no object in is
    queried as a whole.
    """

    kind = "grounding"

    def __init__(self, model_id_or_path: str, threshold: float = 0.1, device: str = "auto", nms_iou: float = 0.5):
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold={threshold}: use a detector score threshold in [0, 1) (0.1 is typical)")
        self.name = "owlv2"
        self.model_id = model_id_or_path
        self.threshold = float(threshold)
        self.device = device
        self.nms_iou = float(nms_iou)
        self._model: Any = None
        self._processor: Any = None

    def _load(self) -> None:
        if self._model is None:
            from transformers import Owlv2ForObjectDetection, Owlv2Processor

            self._processor = Owlv2Processor.from_pretrained(self.model_id)
            model = Owlv2ForObjectDetection.from_pretrained(self.model_id)
            self._model = model.to(resolve_device(self.device)).eval()

    def queries(self, prompt: str) -> list[str]:
        parsed = parse_objects(prompt)
        return parsed.queries or [prompt.strip() or "object"]

    @torch.no_grad()
    def propose(self, image: Any, prompt: str, max_regions: int = 10) -> list[Region]:
        """Up to ``max_regions`` boxes, highest score first, labelled with the query that found them."""
        self._load()
        image = as_rgb(image)
        width, height = image.size
        queries = self.queries(prompt)
        inputs = dict(self._processor(text=[queries], return_tensors="pt"))
        inputs["pixel_values"] = owlv2_pixel_values(image, self._processor.image_processor)
        inputs = {k: v.to(self._model.device) for k, v in inputs.items()}
        outputs = self._model(**inputs)
        # OWLv2 pads the image to a square at the bottom/right, so boxes scale by the longer side.
        side = max(width, height)
        result = self._processor.post_process_grounded_object_detection(
            outputs, threshold=self.threshold, target_sizes=[(side, side)]
        )[0]
        # Clamp first so boxes that become the same after clamping count as duplicates.
        boxes = np.array(
            [clamp_box(b, width, height) for b in result["boxes"].float().cpu().numpy()], dtype=np.float64
        )
        boxes = boxes.reshape(-1, 4)
        scores = result["scores"].float().cpu().numpy()
        labels = result["labels"].cpu().numpy()
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        regions: list[Region] = []
        for label in sorted(set(labels[valid].tolist())):
            idx = np.nonzero((labels == label) & valid)[0]
            for k in nms(boxes[idx], scores[idx], self.nms_iou):
                i = idx[k]
                regions.append(
                    Region(tuple(boxes[i]), source=self.name, label=queries[label], confidence=float(scores[i]))
                )
        regions.sort(key=lambda r: -(r.confidence or 0.0))
        return regions[:max_regions]
