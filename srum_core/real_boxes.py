"""Box sources backed by real vision models through transformers: OWLv2 grounding and SAM automatic masks.

- :class:`Owlv2Grounding` (kind ``"grounding"``): open-vocabulary detection of the prompt's own objects, read by
  :func:`srum_core.prompt_parser.parse_objects` ("a green bench and a red car" → queries "green bench",
  "red car"); boxes carry the query as label and the detector score as confidence.
- :class:`SamAutomaticBoxes` (kind ``"automatic"``): SRUM's released choice (SRUM_SPEC §1.3) — a regular grid of
  point prompts, one mask per point (the best of SAM's three by predicted IoU), duplicates removed by box NMS,
  each mask turned into its integer pixel box, sorted by mask area, the top K (10) kept; background segments
  included, no labels.

Both load their model lazily via ``from_pretrained`` on the first :meth:`propose` and keep it. Boxes are
``(x1, y1, x2, y2)`` integers with exclusive ends, clamped to the image.

OWLv2 images are prepared here in torch rather than by transformers' OWLv2 image processors, which need scipy
(PIL backend) or torchvision, neither of them a project dependency. The steps are the processor's own, read
from its settings: rescale to [0, 1], pad to a square with 0 at the bottom/right, Gaussian anti-aliasing with
σ = max(0, (factor − 1) / 2), linear resize (half-pixel centres), normalise with its mean/std. Scipy's
"mirror" border and spline zoom are approximated by reflect padding and bilinear interpolation.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from .device import resolve_device
from .prompt_parser import parse_objects
from .types import Region

logger = logging.getLogger(__name__)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` boxes ``[x1, y1, x2, y2]`` → ``(N, M)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression: indices kept, highest score first."""
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    keep: list[int] = []
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    while order:
        best = order.pop(0)
        keep.append(int(best))
        if order:
            ious = box_iou(boxes[best : best + 1], boxes[order])[0]
            order = [i for i, iou in zip(order, ious) if iou <= iou_threshold]
    return keep


def mask_to_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The tight integer box of a boolean ``(H, W)`` mask, exclusive ends; None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _clamp_box(box: Any, width: int, height: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    return (
        int(min(max(np.floor(x1), 0), width)),
        int(min(max(np.floor(y1), 0), height)),
        int(min(max(np.ceil(x2), 0), width)),
        int(min(max(np.ceil(y2), 0), height)),
    )


def _as_rgb(image: Any) -> Any:
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image or an (H, W, 3) uint8 array, got {type(image).__name__}")
    return image.convert("RGB")


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
        image = _as_rgb(image)
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
            [_clamp_box(b, width, height) for b in result["boxes"].float().cpu().numpy()], dtype=np.float64
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


class SamAutomaticBoxes:
    """SAM "everything" proposals from a ``points_per_side``² grid of single-point prompts.

    ``iou_threshold``: masks whose predicted IoU is lower are dropped (SAM's own generator uses 0.88);
    ``nms_iou``: box IoU above which a lower-scoring mask counts as a duplicate; ``min_area``: masks smaller than
    this fraction of the image are dropped; ``points_per_batch``: prompts per mask-decoder call.
    """

    kind = "automatic"

    def __init__(
        self,
        model_id_or_path: str,
        points_per_side: int = 16,
        device: str = "auto",
        *,
        iou_threshold: float = 0.7,
        nms_iou: float = 0.7,
        min_area: float = 0.001,
        points_per_batch: int = 64,
    ):
        if not 1 <= points_per_side <= 64:
            raise ValueError(f"points_per_side={points_per_side}: use 1..64 (SAM's generator uses 32)")
        self.name = "sam"
        self.model_id = model_id_or_path
        self.points_per_side = int(points_per_side)
        self.device = device
        self.iou_threshold = float(iou_threshold)
        self.nms_iou = float(nms_iou)
        self.min_area = float(min_area)
        self.points_per_batch = int(points_per_batch)
        self._model: Any = None
        self._processor: Any = None

    def _load(self) -> None:
        if self._model is None:
            from transformers import SamModel, SamProcessor

            self._processor = SamProcessor.from_pretrained(self.model_id)
            model = SamModel.from_pretrained(self.model_id)
            self._model = model.to(resolve_device(self.device)).eval()

    def point_grid(self, width: int, height: int) -> np.ndarray:
        """``(P, 2)`` pixel ``(x, y)`` points at the centres of a ``points_per_side``² grid of cells."""
        n = self.points_per_side
        xs = (np.arange(n) + 0.5) * width / n
        ys = (np.arange(n) + 0.5) * height / n
        gx, gy = np.meshgrid(xs, ys)
        return np.stack([gx.ravel(), gy.ravel()], axis=-1)

    @torch.no_grad()
    def masks(self, image: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(P, H, W)`` boolean masks (best of three per grid point) and their ``(P,)`` predicted IoU."""
        self._load()
        image = _as_rgb(image)
        width, height = image.size
        enc = self._processor(images=image, return_tensors="pt")
        device = self._model.device
        embeddings = self._model.get_image_embeddings(enc["pixel_values"].to(device))
        resized_h, resized_w = (int(v) for v in enc["reshaped_input_sizes"][0])
        points = self.point_grid(width, height) * np.array([resized_w / width, resized_h / height])
        all_masks, all_scores = [], []
        for start in range(0, len(points), self.points_per_batch):
            chunk = torch.tensor(points[start : start + self.points_per_batch], dtype=torch.float32, device=device)
            out = self._model(
                image_embeddings=embeddings,
                input_points=chunk[None, :, None, :],  # (1 image, P prompts, 1 point, xy)
                input_labels=torch.ones(1, len(chunk), 1, dtype=torch.long, device=device),
                multimask_output=True,
            )
            iou = out.iou_scores[0].float()  # (P, 3)
            best = iou.argmax(-1)
            low_res = out.pred_masks[0][torch.arange(len(chunk)), best][:, None]  # (P, 1, h, w)
            full = self._processor.image_processor.post_process_masks(
                [low_res.float().cpu()], enc["original_sizes"], enc["reshaped_input_sizes"]
            )[0][:, 0]
            all_masks.append(full.bool().numpy())
            all_scores.append(iou.gather(1, best[:, None])[:, 0].cpu().numpy())
        return np.concatenate(all_masks), np.concatenate(all_scores)

    def propose(self, image: Any, prompt: str, max_regions: int = 10) -> list[Region]:
        """Up to ``max_regions`` mask boxes, largest mask first (SRUM keeps the top 10)."""
        image = _as_rgb(image)
        width, height = image.size
        masks, scores = self.masks(image)
        areas = masks.reshape(len(masks), -1).sum(-1)
        candidates = []
        for i in range(len(masks)):
            if scores[i] < self.iou_threshold or areas[i] < self.min_area * width * height:
                continue
            box = mask_to_box(masks[i])
            if box is not None:
                candidates.append((i, box))
        if not candidates:
            logger.info("SAM found no mask above IoU %.2f on a %dx%d image", self.iou_threshold, width, height)
            return []
        boxes = np.array([b for _, b in candidates], dtype=np.float64)
        keep = nms(boxes, np.array([scores[i] for i, _ in candidates]), self.nms_iou)
        kept = sorted((candidates[k] for k in keep), key=lambda c: -int(areas[c[0]]))
        return [
            Region(_clamp_box(box, width, height), source=self.name, label=None, confidence=float(scores[i]))
            for i, box in kept[:max_regions]
        ]
