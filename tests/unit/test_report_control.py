"""The report's ControlNet rows: their own table (with the unconditioned baselines), never the teacher curve."""
import json

from sprint_bench.report import tables
from sprint_bench.report.collect import Row


def _row(model, method, steps, metrics, control=None, model_id=None):
    params = {"method": method, "params": "1000", "cfg_scale": "3.0"}
    if control:
        params["control"] = json.dumps(control)
    return Row(run_id=f"{model}-{steps}", model=model, model_id=model_id or model, method=method, steps=steps, nfe=steps,
               params=params, metrics=metrics)


EDGE = {"edge_f1_tol1": 0.5, "edge_precision_tol1": 0.6, "edge_recall_tol1": 0.4, "geneval_overall": 0.7,
        "latency_e2e_ms_median": 12.0}


def test_control_rows_are_never_the_teacher_and_sort_after_baselines():
    cn_teacher = _row("controlnet-teacher", "ControlNet teacher (Euler, CFG)", 4, dict(EDGE, edge_f1_tol1=0.9),
                      control={"num_blocks": 1})
    cn_student = _row("sprint-cn", "sCM + LADD (ControlNet)", 1, dict(EDGE, edge_f1_tol1=0.8), control={"n": 1})
    teacher = _row("teacher", "flow matching (Euler, CFG)", 4, dict(EDGE))
    student = _row("sprint-hybrid", "sCM + LADD", 1, {"geneval_overall": 0.6})  # no edge metric
    assert teacher.is_teacher and not teacher.is_control
    assert cn_teacher.is_control and not cn_teacher.is_teacher
    assert cn_student.is_control and not student.is_control
    # the method name alone marks a ControlNet row too (runs logged without the param)
    assert _row("x", "ControlNet teacher (Euler, CFG)", 1, {}).is_control

    picked = tables.control_rows([cn_student, student, cn_teacher, teacher])
    assert [r.model for r in picked] == ["teacher", "controlnet-teacher", "sprint-cn"]
    header, body = tables.table(picked, tables.CONTROL_COLUMNS)
    col = {h: i for i, h in enumerate(header)}
    assert [b[col["Conditioned"]] for b in body] == ["no (baseline)", "yes", "yes"]
    assert [b[col["Edge F1 (1 px)"]] for b in body] == ["0.500", "0.900", "0.800"]
    assert body[0][col["Edge precision"]] == "0.600" and body[0][col["Edge recall"]] == "0.400"
    assert body[0][col["FD (EfficientNet-Lite0)"]] == "n/a" and body[1][col["Latency b1 (ms)"]] == "12.0"
    assert tables.control_rows([student]) == []


def test_two_trainings_of_one_config_name_are_told_apart_by_their_steps():
    short = _row("sprint-cn", "sCM only (ControlNet)", 1, dict(EDGE), {"n": 1}, model_id="sprint-cn-abc-step1000")
    long = _row("sprint-cn", "sCM only (ControlNet)", 1, dict(EDGE), {"n": 1}, model_id="sprint-cn-def-step2000")
    assert (short.trained_steps, long.trained_steps) == (1000, 2000)
    assert _row("teacher", "flow matching (Euler, CFG)", 20, {}).trained_steps is None  # no -step suffix
    header, body = tables.table(tables.control_rows([long, short]), tables.CONTROL_COLUMNS)
    assert [b[header.index("Trained steps")] for b in body] == ["1000", "2000"]
