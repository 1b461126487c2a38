"""The report's fingerprint (what decides whether `sprint-bench report` rebuilds): results and report code."""
import shutil

from sprint_bench.report import build


def test_fingerprint_changes_with_the_report_code(tmp_path, monkeypatch):
    for f in build.REPORT_CODE.glob("*.py"):
        shutil.copy(f, tmp_path / f.name)
    monkeypatch.setattr(build, "REPORT_CODE", tmp_path)
    before = build.fingerprint([])
    assert build.fingerprint([]) == before  # the same code and results: no rebuild
    with open(tmp_path / "tables.py", "a") as f:
        f.write("\n# a changed table layout\n")
    assert build.fingerprint([]) != before
