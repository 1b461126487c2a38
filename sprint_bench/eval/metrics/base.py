"""One metric interface: a result is numbers plus the protocol that produced them, so no number is ever logged
without its extractor, image count, resolution, resize rule and dtype."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


def param_str(value) -> str:
    """Stable string form of a param value: containers as JSON (a tuple and its JSON round trip agree)."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return str(value)


@dataclass(frozen=True)
class Protocol:
    metric: str  # display name, e.g. "FD (EfficientNet-Lite0)" -- never "FID" unless Inception-v3 2015-12-05
    extractor: str  # backbone / detector and where its weights came from
    num_images: int  # generated images the number is computed on
    resolution: int  # side of the generated images, pixels
    resize: str  # how images reach the extractor, e.g. "PIL bicubic to 224"
    dtype: str  # e.g. "float32"
    extra: dict = field(default_factory=dict)  # metric-specific facts (reference N, subsets, clamp rule, ...)

    def as_params(self, prefix: str) -> dict[str, str]:
        """Flat MLflow params ``<prefix>.<field>`` (values as strings)."""
        d = asdict(self)
        extra = d.pop("extra")
        out = {f"{prefix}.{k}": param_str(v) for k, v in d.items()}
        out.update({f"{prefix}.{k}": param_str(v) for k, v in extra.items()})
        return out


@dataclass(frozen=True)
class MetricResult:
    key: str  # short metric key used in MLflow metric names, e.g. "fd_effnet_lite0"
    values: dict[str, float]  # e.g. {"fd_effnet_lite0": 12.3} or {"kid": 0.01, "kid_std": 0.002}
    protocol: Protocol
