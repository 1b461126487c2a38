"""`sprint-bench paper` (`make paper`) and `sprint-bench paper --quick` (`make quick`): the whole chain -- teacher,
CLIP scorer, sCM-only / LADD-only / hybrid students, evaluation of the teacher (1/2/4/8/20 steps) and of every
student (1/2/4), report. Each stage checks its own output and is skipped when finished; a failed stage stops the
chain and leaves finished work intact; the next run continues where it stopped. Stage times go to
``<root>/suite_state.json``."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sprint_bench.config import load_config

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]
STUDENTS = ("scm", "ladd", "hybrid")
# the micro preset for `make quick`: the student configs shrunk to the micro teacher's model
QUICK_MODEL = ["model.width=32", "model.depth=1", "model.heads=2", "model.cross_heads=2", "data.train_size=64",
               "data.batch_size=8", "train.log_every=1", "train.sample_every=1000", "train.checkpoint_every=4",
               "distill.head_blocks=[0]", "distill.tangent_warmup_steps=2", "train.max_steps=4",
               "distill.compile=false"]  # compiling takes longer than 4 steps of a micro student
TINY_CLIP = dict(steps=2, batch_size=16, train_size=64, warmup_steps=1, eval_images_per_prompt=1, progress=False,
                 model_overrides={"vision_cfg": {"width": 32, "layers": 1, "head_width": 16},
                                  "text_cfg": {"width": 32, "layers": 1, "heads": 2}, "embed_dim": 16})


@dataclass
class SuiteSpec:
    name: str
    root: Path  # runs, eval images, CLIP scorer (quick), suite_state.json
    reports: Path
    tracking_uri: str | None
    experiment: str
    smoke: bool = False
    retrain_teacher: bool = False
    teacher_steps: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 20])
    student_steps: list[int] = field(default_factory=lambda: [1, 2, 4])
    metrics: list[str] = field(default_factory=lambda: ["fd", "kid", "clip", "geneval", "latency"])
    limit_prompts: int | None = None
    images_per_prompt: int = 4
    clip_dir: Path = REPO / "artifacts" / "clip-scorer"

    def overrides(self) -> list[str]:
        o = [f"output_dir={self.root / 'runs'}", f"tracking.experiment={self.experiment}"]
        if self.tracking_uri:
            o.append(f"tracking.tracking_uri={self.tracking_uri}")
        return o


def paper_spec(retrain_teacher: bool = False) -> SuiteSpec:
    from sprint_bench.tracking.mlflow_store import tracking_uri

    return SuiteSpec("paper", REPO, REPO / "reports" / "paper", tracking_uri(None), "sprint_bench",
                     retrain_teacher=retrain_teacher)


def quick_spec(root: Path) -> SuiteSpec:
    root = Path(root).resolve()
    return SuiteSpec("quick", root, root / "reports" / "quick", f"sqlite:///{root / 'mlflow.db'}", "quick",
                     smoke=True, retrain_teacher=True, teacher_steps=[1, 2], student_steps=[1, 2],
                     limit_prompts=24, images_per_prompt=1, clip_dir=root / "clip-scorer")


class Suite:
    def __init__(self, spec: SuiteSpec):
        self.spec = spec
        self.state_file = spec.root / "suite_state.json"

    # -------------------------------------------------------------------------------------------- configs
    def teacher_cfg(self):
        s = self.spec
        if s.smoke:
            return load_config(REPO / "experiments/micro.yaml", s.overrides() + ["train.max_steps=4",
                                                                              "data.batch_size=8"])
        return load_config(REPO / "experiments/teacher.yaml", s.overrides())

    def student_cfg(self, which: str, teacher: str):
        extra = QUICK_MODEL if self.spec.smoke else []
        return load_config(REPO / f"experiments/sprint/{which}.yaml",
                           extra + self.spec.overrides() + [f"distill.teacher={teacher}"])

    def eval_settings(self, steps: list[int]):
        from sprint_bench.eval.harness import EvalSettings

        s = self.spec
        return EvalSettings(steps=steps, metrics=list(s.metrics), images_per_prompt=s.images_per_prompt,
                            clip_scorer=str(s.clip_dir), out_root=str(s.root / "runs" / "eval"),
                            experiment=s.experiment, tracking_uri=s.tracking_uri, limit_prompts=s.limit_prompts)

    # -------------------------------------------------------------------------------------------- stages
    def teacher_path(self) -> str:
        from sprint_bench.lit.train_teacher import run_dir

        if self.spec.retrain_teacher:
            return str(run_dir(self.teacher_cfg()) / "export")
        return "teacher"  # the release, spelled as in the student YAMLs (a path would change their config hash)

    def stages(self) -> list[tuple[str, Callable[[], bool]]]:
        """(name, run) pairs; run() returns True when it did work, False when it found the stage finished."""
        from sprint_bench.eval.harness import Evaluator
        from sprint_bench.lit.train_distill import run_dir, train_distill
        from sprint_bench.lit.train_teacher import train_teacher
        from sprint_bench.models.release import RELEASED_TEACHER, promote_teacher

        s = self.spec

        def teacher() -> bool:
            if not s.retrain_teacher:
                if not (RELEASED_TEACHER / "sprint_bench.json").exists():
                    raise FileNotFoundError("no released teacher: run `make teacher` or `make paper TEACHER=retrain`")
                return False
            cfg = self.teacher_cfg()
            done = (run_dir(cfg) / "DONE").exists()
            export = train_teacher(cfg)
            if not s.smoke:
                promote_teacher(export)
            return not done

        def clip() -> bool:
            if (s.clip_dir / "meta.json").exists():
                return False
            from sprint_bench.eval.clip.train import train_clip_scorer

            world = self.teacher_cfg().world
            train_clip_scorer(world, s.clip_dir, **(TINY_CLIP if s.smoke else {}))
            return True

        def student(which: str) -> Callable[[], bool]:
            def run() -> bool:
                cfg = self.student_cfg(which, self.teacher_path())
                done = (run_dir(cfg) / "DONE").exists()
                train_distill(cfg)
                return not done
            return run

        def evaluate(model: Callable[[], str], steps: list[int]) -> Callable[[], bool]:
            def run() -> bool:
                rows = Evaluator(model(), self.eval_settings(steps)).run()
                return any(not r.get("skipped") for r in rows)
            return run

        def report() -> bool:
            from sprint_bench.report.build import build_report
            from sprint_bench.tracking.mlflow_store import tracking_uri

            return build_report(s.experiment, tracking_uri(s.tracking_uri), s.reports, s.name, smoke=s.smoke)[1]

        out = [("teacher", teacher), ("clip-scorer", clip)]
        out += [(f"student-{w}", student(w)) for w in STUDENTS]
        out.append(("eval-teacher", evaluate(self.teacher_path, s.teacher_steps)))
        for w in STUDENTS:
            out.append((f"eval-{w}", evaluate(lambda w=w: str(run_dir(self.student_cfg(w, self.teacher_path()))),
                                              s.student_steps)))
        out.append(("report", report))
        return out

    def run(self) -> dict:
        state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        self.spec.root.mkdir(parents=True, exist_ok=True)
        for name, fn in self.stages():
            t0 = time.time()
            log.info("stage %s", name)
            try:
                did = fn()
            except BaseException as e:
                state[name] = {"status": "failed", "seconds": round(time.time() - t0, 1), "error": repr(e)[:500]}
                self.state_file.write_text(json.dumps(state, indent=2) + "\n")
                raise
            entry = {"status": "ran" if did else "skipped", "seconds": round(time.time() - t0, 1)}
            if did or name not in state or state[name].get("status") == "failed":
                state[name] = entry
            state[name]["last"] = entry["status"]
            self.state_file.write_text(json.dumps(state, indent=2) + "\n")
        return state
