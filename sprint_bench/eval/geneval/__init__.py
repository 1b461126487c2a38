"""GenEval (Ghosh et al. 2023, djghosh13/geneval) scoring protocol over a pluggable detector."""

from .detector import ColorClassifier, Detection, DetectionColorClassifier, Detector
from .layout import (
    iter_samples,
    load_metadata,
    official_metadata_path,
    sample_path,
    score_folder,
    validate_metadata,
    write_prompt_folder,
    write_results,
)
from .scoring import (
    GENEVAL_COLORS,
    GENEVAL_TASKS,
    RELATIONS,
    ImageResult,
    ScoringOptions,
    compute_iou,
    evaluate_detections,
    postprocess,
    relative_position,
    score_image,
    summarize,
    summarize_images,
)

__all__ = [
    "ColorClassifier", "Detection", "DetectionColorClassifier", "Detector",
    "iter_samples", "load_metadata", "official_metadata_path", "sample_path", "score_folder",
    "validate_metadata", "write_prompt_folder", "write_results",
    "GENEVAL_COLORS", "GENEVAL_TASKS", "RELATIONS", "ImageResult", "ScoringOptions", "compute_iou",
    "evaluate_detections", "postprocess", "relative_position", "score_image", "summarize",
    "summarize_images",
]
