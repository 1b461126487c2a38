"""The GenEval-Shapes detector benchmark: ground-truth renders score 1, blurred ones less, and bad input is refused."""
import pytest

from sprint_bench.eval.geneval import bench


def test_sharp_renders_score_one_and_a_strong_blur_fails_most():
    sharp = bench.main(["--n", "60", "--noise", "0"])
    blurred = bench.main(["--n", "60", "--noise", "0", "--blur", "2.0"])
    assert sharp["overall_on_noisy_ground_truth"] == 1.0 and sharp["blur_std_px"] == 0.0
    assert blurred["overall_on_noisy_ground_truth"] < 0.5 and blurred["blur_std_px"] == 2.0
    assert set(blurred["tasks"]) == set(sharp["tasks"])


@pytest.mark.parametrize("bad", [["--blur", "-1"], ["--n", "0"], ["--noise", "-0.5"]])
def test_bad_arguments_are_refused(bad):
    with pytest.raises(SystemExit):
        bench.main(bad)
