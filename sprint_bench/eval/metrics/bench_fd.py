"""Throughput of EfficientNet-Lite0 feature extraction on this CPU.

    python -m sprint_bench.eval.metrics.bench_fd --n 512

Random uint8 images at ``--resolution`` (default 32) go through the full extractor path (PIL bicubic resize to 224,
normalisation, network, average pool) in batches of ``--batch-size``; one JSON line is written to stdout with
images/s overall and the split between preprocessing and network time. A warm-up batch is excluded.
The default batch is the extractor's own, 16 (`make bench-eval` passes it too), which was faster than 64 on the
2-core dev machine (docs/RESULTS.md, "Evaluation speed").
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=512, help="images to time (after one warm-up batch)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--resolution", type=int, default=32, help="side of the input images before the 224 resize")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.n < 1 or args.batch_size < 1 or args.threads < 1:
        ap.error("--n, --batch-size and --threads must be >= 1")

    torch.set_num_threads(args.threads)
    from sprint_bench.eval.metrics.extractors import EfficientNetLite0Features, freed_memory_kept

    ex = EfficientNetLite0Features(batch_size=args.batch_size)
    rng = np.random.default_rng(args.seed)
    images = rng.integers(0, 256, size=(args.n, args.resolution, args.resolution, 3), dtype=np.uint8)
    warm = rng.integers(0, 256, size=(min(args.batch_size, args.n), args.resolution, args.resolution, 3),
                        dtype=np.uint8)
    ex(warm)

    t_pre = t_net = 0.0
    t0 = time.perf_counter()
    with torch.inference_mode(), freed_memory_kept():  # as the extractor's own batch loop runs
        for i in range(0, args.n, args.batch_size):
            a = time.perf_counter()
            x = ex.preprocess(images[i:i + args.batch_size])
            b = time.perf_counter()
            ex.features(x).numpy()
            t_net += time.perf_counter() - b
            t_pre += b - a
    total = time.perf_counter() - t0

    rec = {
        "bench": "fd_effnet_lite0_features",
        "images": args.n,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "input_resolution": args.resolution,
        "network_resolution": ex.native_size,
        "images_per_s": round(args.n / total, 3),
        "seconds": round(total, 3),
        "preprocess_s": round(t_pre, 3),
        "network_s": round(t_net, 3),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "nice": os.nice(0) if hasattr(os, "nice") else None,
        "torch": torch.__version__,
    }
    sys.stdout.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
