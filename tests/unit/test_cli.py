"""The command line stops on config errors before any model or data is built, naming the key and the file."""
import pytest

from sprint_bench import cli


@pytest.fixture
def no_compute(monkeypatch):
    import sprint_bench.data.datamodule as dm
    import sprint_bench.lit.teacher as teacher  # binds build_sana at import: patched there too, and imported
    import sprint_bench.models.sana as sana  # here, so that no later test inherits the patched name

    def boom(*a, **k):
        raise AssertionError("compute started before the config was validated")

    monkeypatch.setattr(sana, "build_sana", boom)
    monkeypatch.setattr(teacher, "build_sana", boom)
    monkeypatch.setattr(dm, "load_or_render", boom)


@pytest.mark.parametrize("yaml_text, override, needles", [
    ("base: {base}\nmodel:\n  dpeth: 3\n", None, ["model.dpeth", "bad.yaml", "model.depth"]),
    ("base: {base}\nmodel:\n  depth: three\n", None, ["model.depth", "bad.yaml", "int"]),
    ("base: {base}\nworld:\n  max_count: 9\n", None, ["world.max_count", "bad.yaml"]),
    ("base: missing_base.yaml\n", None, ["missing_base.yaml", "bad.yaml"]),
    ("base: {base}\n", "train.lr=-1", ["train.lr", "<command line>"]),
    ("base: {base}\n", "name=../../elsewhere", ["name=", "run folder"]),
])
def test_config_errors_stop_before_compute(tmp_path, capsys, no_compute, yaml_text, override, needles):
    from tests.conftest import REPO

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml_text.format(base=REPO / "experiments" / "base.yaml"))
    argv = ["train-teacher", "--config", str(bad)] + ([override] if override else [])
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err


def test_distill_refuses_a_teacher_config_before_training(tmp_path, capsys, no_compute):
    """A teacher config hashes like a student's: given to `distill`, its run folder holds the teacher, which must
    not be taken for a finished student (nor resumed into)."""
    import json

    from sprint_bench.config import load_config, run_name
    from tests.conftest import REPO

    teacher_yaml = REPO / "experiments" / "teacher.yaml"
    out = tmp_path / "runs" / run_name(load_config(teacher_yaml, [f"output_dir={tmp_path / 'runs'}"]))
    out.mkdir(parents=True)
    (out / "run.json").write_text(json.dumps({"kind": "teacher", "source": None}))
    assert cli.main(["distill", "--config", str(teacher_yaml), f"output_dir={tmp_path / 'runs'}", "--no-eval"]) == 2
    assert "holds a teacher run, not a student run" in capsys.readouterr().err


def test_make_prompts_refuses_a_world_other_than_the_default(tmp_path, capsys):
    from sprint_bench.data.shapes.prompts import PROMPTS_FILE
    from tests.conftest import REPO

    before = PROMPTS_FILE.read_bytes()
    argv = ["make-prompts", "--config", str(REPO / "experiments" / "base.yaml"), "world.max_count=2"]
    assert cli.main(argv) == 2
    assert "default world" in capsys.readouterr().err and PROMPTS_FILE.read_bytes() == before
