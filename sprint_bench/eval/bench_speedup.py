"""Speed-up benchmark: batch-1 latency of a student at 1 (and 2, 4) steps vs a reference -- by default the teacher at
20 Euler steps with CFG -- measured in one process on the same machine, interleaved (reference, student, reference,
...) so drift hits both. `make bench-speedup STUDENT=runs/sprint-hybrid-<hash>`; `make bench-controlnet` compares the
1-step ControlNet student with the plain 1-step student (``--teacher <student> --teacher-steps 1``)."""
from __future__ import annotations

import argparse
import json
import statistics

from sprint_bench.eval.generators import load_generator
from sprint_bench.eval.latency import MIN_RUNS, MIN_WARMUP, device_info, measure_latency
from sprint_bench.models.text_encoder import TextEncoder


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("student", help="a student's run or export folder")
    ap.add_argument("--teacher", default="teacher", help="the reference model (any generator the harness loads)")
    ap.add_argument("--teacher-steps", type=int, default=20, help="the reference's step count")
    ap.add_argument("--student-steps", default="1,2,4")
    ap.add_argument("--runs", type=int, default=MIN_RUNS, help="timed calls per round (>= 50, metrics protocol §6.2)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    teacher, student = load_generator(args.teacher), load_generator(args.student)
    encoder = TextEncoder(teacher.cfg.text.max_length)
    captions = ["a photo of a red circle", "a photo of two blue squares", "a photo of a green triangle left of a "
                "white circle", "a photo of three yellow circles"]
    ref_cfg = teacher.cfg.sample.cfg_scale
    pipes = {f"{teacher.name} {teacher.sampler_tag(args.teacher_steps, ref_cfg)}":
             teacher.pipeline(args.teacher_steps, ref_cfg, encoder)}
    for s in (int(x) for x in args.student_steps.split(",")):
        pipes[f"{student.name} {s} step(s)"] = student.pipeline(s, student.cfg.sample.cfg_scale, encoder)
    medians: dict[str, dict[str, list[float]]] = {k: {"e2e": [], "denoise": []} for k in pipes}
    for _ in range(args.rounds):
        for name, pipe in pipes.items():
            r = measure_latency(pipe, captions, warmup=MIN_WARMUP, runs=args.runs, threads=args.threads)
            medians[name]["e2e"].append(r.values["latency_e2e_ms_median"])
            medians[name]["denoise"].append(r.values["latency_denoise_ms_median"])
    t_name = next(iter(pipes))
    res = {"device": device_info("cpu")["device_name"], "dtype": "float32", "threads": args.threads,
           "batch": 1, "runs_per_round": args.runs, "rounds": args.rounds, "student": str(student.path),
           "reference": str(teacher.path), "descriptions": {k: p.description for k, p in pipes.items()},
           "latency_ms": {k: {s: statistics.median(v) for s, v in d.items()} for k, d in medians.items()}}
    t = res["latency_ms"][t_name]
    res["speedup_vs_teacher"] = {k: {s: t[s] / v[s] for s in v} for k, v in res["latency_ms"].items() if k != t_name}
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
