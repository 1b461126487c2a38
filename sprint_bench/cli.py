"""`sprint-bench <verb>`: thin dispatch to the library."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="experiments/teacher.yaml", help="experiment YAML")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.depth=4")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sprint-bench", description=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("train-teacher", help="train (or resume) the flow-matching teacher")
    _config_args(p)
    p = sub.add_parser("eval-teacher", help="GenEval-Shapes of a trained teacher (Euler + CFG)")
    _config_args(p)
    p.add_argument("--export", default=None, help="exported teacher folder (default: the config's run)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--cfg-scale", type=float, default=None)
    p.add_argument("--limit", type=int, default=None, help="only the first N prompts (smoke runs)")
    p = sub.add_parser("release-teacher", help="copy a trained teacher to releases/teacher (old one kept as .bak)")
    _config_args(p)
    p = sub.add_parser("train-controlnet", help="train (or resume) a ControlNet teacher on top of the frozen teacher "
                                                "(edge-map condition)")
    _config_args(p)
    p.set_defaults(config="experiments/controlnet/teacher.yaml")
    p.add_argument("--release", action="store_true", help="copy the result to releases/controlnet-teacher "
                                                          "(a different old release is kept as .bak)")
    p = sub.add_parser("make-prompts", help="regenerate the shipped GenEval-Shapes prompt file")
    _config_args(p)
    p = sub.add_parser("distill", help="distil the teacher into a 1-4 step student, then evaluate it at "
                                       "distill.eval_steps through the harness")
    _config_args(p)
    p.set_defaults(config="experiments/sprint/hybrid.yaml")
    p.add_argument("--no-eval", action="store_true", help="train (and export) only")
    p.add_argument("--metrics", default="fd,kid,clip,geneval,latency", help="metrics of the evaluation")
    p.add_argument("--clip-scorer", default="artifacts/clip-scorer", help="trained shapes-CLIP folder")
    p.add_argument("--eval-out", default="runs/eval", help="where generated images and metric caches go")
    p.add_argument("--limit-prompts", type=int, default=None, help="smoke runs: only the first N GenEval prompts")
    p = sub.add_parser("export-checkpoint", help="export the student of one checkpoint of a distillation run, to "
                                                 "evaluate the run part-way (its EMA when the config keeps one)")
    _config_args(p)
    p.set_defaults(config="experiments/sprint/hybrid.yaml")
    p.add_argument("--checkpoint", required=True, help="a .ckpt file of the run of --config and its overrides")
    p.add_argument("--out", default=None, help="export folder (default: <run folder>/snapshots/step<N>)")
    p = sub.add_parser("search-schedule", help="greedy sampler-timestep search for a student (paper App. F.2), "
                                               "scored by GenEval-Shapes on a prompt subset (noise seeds from 2**30, "
                                               "none of the evaluation's)")
    p.add_argument("checkpoint", help="a student's run folder or export folder")
    p.add_argument("--steps", type=int, default=4, help="search the 1..steps schedules")
    p.add_argument("--limit-prompts", type=int, default=160, help="GenEval-Shapes prompts scored per schedule")
    p.add_argument("--images-per-prompt", type=int, default=2)
    p.add_argument("--apply", action="store_true", help="store the chosen schedules in the export")
    p = sub.add_parser("paper", help="the whole suite: teacher, CLIP scorer, three students, evaluations, report "
                                     "(finished stages are skipped)")
    p.add_argument("--quick", metavar="DIR", default=None, help="smoke run of the chain on the micro preset in DIR")
    p.add_argument("--retrain-teacher", action="store_true", help="train the teacher instead of using the release")
    p = sub.add_parser("report", help="build reports/<suite>/ from an MLflow experiment")
    p.add_argument("--experiment", default="sprint_bench")
    p.add_argument("--suite", default="paper")
    p.add_argument("--out", default=None, help="default: reports/<suite>")
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--smoke", action="store_true", help="label the report as a smoke run")
    p.add_argument("--force", action="store_true",
                   help="rebuild even if the results, caveats and report code are unchanged")
    p = sub.add_parser("eval", help="evaluate a model at several step counts (FD, KID, CLIP, GenEval, latency)")
    p.add_argument("checkpoint", help='"teacher" (the released teacher), "controlnet-teacher" (the released ControlNet '
                                      'teacher), an export folder or a run folder')
    p.add_argument("--steps", default="1,2,4", help="comma-separated step counts")
    p.add_argument("--metrics", default="fd,kid,clip,geneval,latency",
                   help="subset of fd,kid,clip,geneval,latency,fid,edge_f1")
    p.add_argument("--cfg-scale", type=float, default=None, help="guidance scale (default: the model's own)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--images-per-prompt", type=int, default=4)
    p.add_argument("--clip-scorer", default="artifacts/clip-scorer", help="trained shapes-CLIP folder")
    p.add_argument("--inception-weights", default=None, help="local inception-2015-12-05.pt for metric 'fid'")
    p.add_argument("--out", default="runs/eval", help="where generated images and metric caches go")
    p.add_argument("--experiment", default="sprint_bench", help="MLflow experiment")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit-prompts", type=int, default=None, help="smoke runs: only the first N GenEval prompts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.verb == "eval":
        return _eval(args)
    if args.verb == "paper":
        from sprint_bench.suite import Suite, paper_spec, quick_spec

        spec = quick_spec(Path(args.quick)) if args.quick else paper_spec(args.retrain_teacher)
        state = Suite(spec).run()
        print(json.dumps(state, indent=2))
        print(spec.reports / "report.html")
        return 0
    if args.verb == "report":
        from sprint_bench.report.build import build_report
        from sprint_bench.tracking.mlflow_store import tracking_uri

        try:
            out, _ = build_report(args.experiment, tracking_uri(args.tracking_uri), args.out or f"reports/{args.suite}",
                               args.suite, smoke=args.smoke, force=args.force)
        except ValueError as e:
            print(f"report error: {e}", file=sys.stderr)
            return 2
        print(out)
        return 0
    if args.verb == "search-schedule":
        from sprint_bench.eval.schedule_search import search_schedule

        try:
            result = search_schedule(args.checkpoint, args.steps, args.limit_prompts, args.images_per_prompt,
                                     args.apply)
        except (ValueError, FileNotFoundError) as e:
            print(f"search-schedule error: {e}", file=sys.stderr)
            return 2
        print(json.dumps(result["chosen"], indent=2))
        return 0
    from sprint_bench.config import ConfigError, load_config

    try:
        cfg = load_config(args.config, args.overrides)
    except (ConfigError, FileNotFoundError) as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    if args.verb == "distill":
        return _distill(cfg, args)
    try:
        return _other_verbs(cfg, args)
    except (ConfigError, FileNotFoundError) as e:  # raised by the checks before any training or writing
        print(f"{args.verb} error: {e}", file=sys.stderr)
        return 2


def _other_verbs(cfg, args) -> int:
    from sprint_bench.config import ConfigError

    if args.verb == "train-teacher":
        from sprint_bench.lit.train_teacher import train_teacher

        print(train_teacher(cfg))
    elif args.verb == "train-controlnet":
        from sprint_bench.lit.train_controlnet import load_base, train_controlnet_teacher
        from sprint_bench.models.release import RELEASED_CONTROLNET_TEACHER, promote_teacher

        load_base(cfg)
        export = train_controlnet_teacher(cfg)
        print(promote_teacher(export, RELEASED_CONTROLNET_TEACHER) if args.release else export)
    elif args.verb == "export-checkpoint":
        from sprint_bench.lit.train_distill import export_checkpoint

        try:
            print(export_checkpoint(cfg, args.checkpoint, args.out))
        except (ValueError, FileExistsError) as e:  # another config's checkpoint, a student of another shape, or
            raise ConfigError(str(e)) from None  # --out holding another export (left as it is)
    elif args.verb == "eval-teacher":
        from sprint_bench.eval.teacher_geneval import evaluate_teacher_geneval
        from sprint_bench.lit.train_teacher import run_dir

        export = args.export or run_dir(cfg) / "export"
        summary = evaluate_teacher_geneval(export, run_dir(cfg) / "eval", args.steps or cfg.sample.steps,
                                           cfg.sample.cfg_scale if args.cfg_scale is None else args.cfg_scale,
                                           cfg.sample.images_per_prompt, cfg.sample.batch_size, cfg.seed, args.limit)
        print(json.dumps(summary, indent=2))
    elif args.verb == "release-teacher":
        from sprint_bench.lit.train_teacher import run_dir
        from sprint_bench.models.release import promote_teacher

        print(promote_teacher(run_dir(cfg) / "export"))
    elif args.verb == "make-prompts":
        from sprint_bench.config.schema import WorldConfig
        from sprint_bench.data.shapes.prompts import PROMPTS_FILE, geneval_shapes_prompts, write_prompts

        if cfg.world != WorldConfig():
            raise ConfigError(f"make-prompts writes the package's prompt file ({PROMPTS_FILE}), which is the default "
                              f"world's; this config's world differs from it", key="world")
        write_prompts(geneval_shapes_prompts(cfg.world), PROMPTS_FILE)
        print(PROMPTS_FILE)
    return 0


def _eval(args) -> int:
    from sprint_bench.eval.harness import EvalSettings, Evaluator, parse_metrics, parse_steps

    try:
        settings = EvalSettings(steps=parse_steps(args.steps), metrics=parse_metrics(args.metrics),
                                cfg_scale=args.cfg_scale, seed=args.seed, images_per_prompt=args.images_per_prompt,
                                clip_scorer=args.clip_scorer, inception_weights=args.inception_weights,
                                out_root=args.out, experiment=args.experiment, threads=args.threads,
                                limit_prompts=args.limit_prompts)
        evaluator = Evaluator(args.checkpoint, settings)
    except (ValueError, FileNotFoundError) as e:
        print(f"eval error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(evaluator.run(), indent=2))
    return 0


def _distill(cfg, args) -> int:
    """Check everything cheap first (teacher, metrics, CLIP scorer), then train, export and evaluate."""
    from sprint_bench.config import ConfigError
    from sprint_bench.eval.harness import EvalSettings, Evaluator, check_counts, parse_metrics
    from sprint_bench.lit.train_distill import load_matching_teacher, train_distill

    try:
        load_matching_teacher(cfg)
        settings = None
        if not args.no_eval:  # the protocol's image seeds (0), whatever the training seed
            settings = EvalSettings(steps=list(cfg.distill.eval_steps), metrics=parse_metrics(args.metrics),
                                    images_per_prompt=cfg.sample.images_per_prompt,
                                    batch_size=cfg.sample.batch_size, clip_scorer=args.clip_scorer,
                                    out_root=args.eval_out, experiment=cfg.tracking.experiment,
                                    tracking_uri=cfg.tracking.tracking_uri, threads=cfg.train.threads,
                                    limit_prompts=args.limit_prompts)
            check_counts(settings)
            if "clip" in settings.metrics and not (Path(args.clip_scorer) / "meta.json").exists():
                raise FileNotFoundError(f"CLIP scorer not found at {args.clip_scorer}; train it with "
                                        f"`make clip-scorer`, pass --clip-scorer DIR or leave clip out of --metrics")
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"distill error: {e}", file=sys.stderr)
        return 2
    try:
        export = train_distill(cfg)
    except ConfigError as e:  # its checks before training: a run folder of another kind or teacher, a second
        # stage whose first stage is not trained yet, ...
        print(f"distill error: {e}", file=sys.stderr)
        return 2
    print(export)
    if settings is not None:
        print(json.dumps(Evaluator(export, settings).run(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
