"""The command line stops on config errors before any model or data is built, naming the key and the file."""
import pytest

from sprint_bench import cli


@pytest.fixture
def no_compute(monkeypatch):
    import sprint_bench.data.datamodule as dm
    import sprint_bench.models.sana as sana

    def boom(*a, **k):
        raise AssertionError("compute started before the config was validated")

    monkeypatch.setattr(sana, "build_sana", boom)
    monkeypatch.setattr(dm, "load_or_render", boom)


@pytest.mark.parametrize("yaml_text, override, needles", [
    ("base: {base}\nmodel:\n  dpeth: 3\n", None, ["model.dpeth", "bad.yaml", "model.depth"]),
    ("base: {base}\nmodel:\n  depth: three\n", None, ["model.depth", "bad.yaml", "int"]),
    ("base: {base}\nworld:\n  max_count: 9\n", None, ["world.max_count", "bad.yaml"]),
    ("base: missing_base.yaml\n", None, ["missing_base.yaml", "bad.yaml"]),
    ("base: {base}\n", "train.lr=-1", ["train.lr", "<command line>"]),
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
