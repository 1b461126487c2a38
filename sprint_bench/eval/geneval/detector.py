"""Pluggable detector interface for GenEval scoring (Ghosh et al. 2023 uses Mask2Former + CLIP; any backend fits)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Detection", "Detector", "ColorClassifier", "DetectionColorClassifier"]


@dataclass
class Detection:
    """One detected object: box (x1, y1, x2, y2) in pixels with y growing downward, confidence, optional mask/colour."""

    box: tuple[float, float, float, float]
    score: float
    mask: np.ndarray | None = None
    color: str | None = None


@runtime_checkable
class Detector(Protocol):
    """Object detector: HxWx3 uint8 image -> class name -> detections (any order, unthresholded)."""

    def detect(self, image: np.ndarray) -> dict[str, list[Detection]]: ...


@runtime_checkable
class ColorClassifier(Protocol):
    """Colour classifier: pick one of `candidates` for the object `detection` of class `class_name` in `image`."""

    def classify(self, image: np.ndarray | None, detection: Detection, class_name: str,
                 candidates: list[str]) -> str: ...


class DetectionColorClassifier:
    """ColorClassifier that trusts the colour the detector already attached to each detection."""

    def classify(self, image: np.ndarray | None, detection: Detection, class_name: str,
                 candidates: list[str]) -> str:
        if detection.color is None:
            raise ValueError(
                f"detection of {class_name!r} at {tuple(detection.box)} has no colour; "
                "use a detector that sets Detection.color or pass a real ColorClassifier")
        return detection.color
