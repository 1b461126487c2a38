"""What a run folder holds decides whether a trainer may skip to it or resume it (lit/fit.py)."""
import json

import pytest

from sprint_bench.config import ConfigError
from sprint_bench.lit.fit import finished_export, run_facts


def _export(out, kind):
    (out / "export").mkdir(parents=True)
    (out / "export" / "sprint_bench.json").write_text(json.dumps({"kind": kind}))
    (out / "DONE").write_text("2\n")


def test_a_finished_run_of_the_same_kind_and_source_is_reused(tmp_path):
    assert finished_export(tmp_path / "new", "student", "t1") is None and run_facts(tmp_path / "new") == {}
    _export(tmp_path, "scm_student")
    (tmp_path / "run.json").write_text(json.dumps({"kind": "student", "source": "t1"}))
    assert finished_export(tmp_path, "student", "t1") == tmp_path / "export"


def test_another_kind_or_teacher_is_refused(tmp_path):
    _export(tmp_path, "flow_matching_teacher")  # a folder from before run.json: its export names the kind
    assert run_facts(tmp_path) == {"kind": "teacher"}
    with pytest.raises(ConfigError, match="holds a teacher run, not a student run"):
        finished_export(tmp_path, "student", "t1")
    assert finished_export(tmp_path, "teacher") == tmp_path / "export"
    (tmp_path / "run.json").write_text(json.dumps({"kind": "student", "source": "t1"}))
    with pytest.raises(ConfigError, match="trained from t1, but the config's teacher is now t2"):
        finished_export(tmp_path, "student", "t2")  # a newly released teacher: no silent skip, no resume
