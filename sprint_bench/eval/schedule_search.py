"""`sprint-bench search-schedule`: the paper's greedy timestep search (SANA-Sprint App. F.2) for a distilled
student, scored with the harness's GenEval-Shapes on a prompt subset (every family kept in proportion)."""
from __future__ import annotations

import json
from pathlib import Path

from tqdm.auto import tqdm

from sprint_bench.data.shapes.prompts import geneval_shapes_prompts
from sprint_bench.eval.generators import SprintStudent, load_generator
from sprint_bench.eval.geneval.generate import image_seed
from sprint_bench.eval.geneval.scoring import summarize_images
from sprint_bench.eval.geneval.shapes_detector import ShapesDetector
from sprint_bench.models.text_encoder import CaptionCache

# Noise seeds of the search start here (the harness's :func:`image_seed` rule from this base): above every
# evaluation seed the harness draws (seed 0 or 10**6, 553 prompts x 4 images) and below the ODE-pair banks' (from
# 2**31), so a schedule is never chosen on the noise it is then evaluated on.
SEARCH_SEED_BASE = 2**30


def subset(prompts: list[dict], n: int | None) -> list[dict]:
    """Every k-th prompt, so each GenEval family keeps its share (the prompt file is ordered by family)."""
    if not n or n >= len(prompts):
        return prompts
    stride = len(prompts) / n
    return [prompts[int(i * stride)] for i in range(n)]


def geneval_score(student: SprintStudent, prompts: list[dict], cfg_scale: float, images_per_prompt: int = 2,
                  seed: int = SEARCH_SEED_BASE, batch_size: int = 128):
    """schedule -> GenEval-Shapes overall on ``prompts`` (fixed seeds, so candidates differ only by schedule); the
    number of steps is the schedule's."""
    captions = CaptionCache.build(sorted({p["prompt"] for p in prompts}), student.cfg.text.max_length,
                                  Path(student.cfg.output_dir) / "cache")
    detector = ShapesDetector(student.cfg.world)
    todo = [(i, k) for i in range(len(prompts)) for k in range(images_per_prompt)]

    def score(schedule) -> float:
        fn = student.sample_fn(len(schedule) - 1, cfg_scale, captions, timesteps=schedule)

        def items():
            for b in range(0, len(todo), batch_size):
                chunk = todo[b:b + batch_size]
                images = fn([prompts[i]["prompt"] for i, _ in chunk],
                            [image_seed(seed, i, images_per_prompt, k) for i, k in chunk])
                yield from ((img, prompts[i], i) for (i, _), img in zip(chunk, images))

        return summarize_images(items(), detector)["overall"]

    return score


def search_schedule(checkpoint: str | Path, steps: int = 4, limit_prompts: int | None = 160,
                    images_per_prompt: int = 2, apply: bool = False) -> dict:
    """Greedy search of the 1..steps schedules; writes ``schedule_search.json`` beside the export and, with
    ``apply``, stores the chosen schedules in the export (the harness then samples with them)."""
    from sprint_bench.samplers.search import greedy_schedule_search

    student = load_generator(checkpoint)
    if not isinstance(student, SprintStudent):
        raise ValueError(f"{checkpoint} is not a distilled student (schedule search is for the sCM sampler)")
    prompts = subset(geneval_shapes_prompts(student.cfg.world), limit_prompts)
    cfg_scale = student.cfg.sample.cfg_scale
    bar = tqdm(desc="schedules scored", unit="schedule")
    geneval = geneval_score(student, prompts, cfg_scale, images_per_prompt)

    def score(schedule) -> float:
        bar.update()
        return geneval(schedule)

    chosen, table = greedy_schedule_search(score, steps)
    bar.close()
    result = {"metric": f"GenEval-Shapes overall, {len(prompts)} prompts x {images_per_prompt} images, w={cfg_scale}, "
                        f"noise seeds from {SEARCH_SEED_BASE}",
              "chosen": {str(k): list(v) for k, v in chosen.items()}, "table": table}
    (student.path / "schedule_search.json").write_text(json.dumps(result, indent=2) + "\n")
    if apply:
        meta_file = student.path / "sprint_bench.json"
        meta = json.loads(meta_file.read_text())
        meta["schedules"] = {**meta.get("schedules", {}), **result["chosen"]}
        meta["schedule_source"] = "greedy search (schedule_search.json)"
        tmp = meta_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
        tmp.replace(meta_file)
    return result
