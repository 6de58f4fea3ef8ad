"""helpers.stats: standard errors, McNemar's exact test and the sentences the chapters print."""
import math

import numpy as np
import pytest
import torch
from statsmodels.stats.contingency_tables import mcnemar as statsmodels_mcnemar

import helpers


@pytest.mark.parametrize("acc, n, se", [(0.98, 1000, 0.004427), (0.94, 1000, 0.00751), (0.5, 100, 0.05),
                                        (1.0, 10, 0.0), (0.0, 10, 0.0)])
def test_accuracy_se_known_values(acc, n, se):
    assert helpers.accuracy_se(acc, n) == pytest.approx(se, abs=5e-6)


def test_accuracy_se_is_the_spread_of_simulated_accuracies():
    """The oracle: the standard deviation of many accuracies measured on n examples of a p-accurate model."""
    rng = np.random.default_rng(0)
    accs = rng.binomial(1000, 0.94, size=20_000) / 1000
    assert helpers.accuracy_se(0.94, 1000) == pytest.approx(accs.std(), rel=0.02)


@pytest.mark.parametrize("acc, n, message", [(1.2, 10, "acc must be a fraction in"), (float("nan"), 10, "acc must"),
                                             (0.5, 0, "n must be the number of examples"), (0.5, 2.5, "n must"),
                                             (0.5, True, "n must")])
def test_accuracy_se_refuses_bad_input(acc, n, message):
    with pytest.raises(ValueError, match=message):
        helpers.accuracy_se(acc, n)


def test_format_acc_is_one_wording():
    assert helpers.format_acc(0.984, 1000) == "0.984 ± 0.004 (± 1 s.e., n = 1,000)"
    assert helpers.format_acc(0.94, 10_000) == "0.940 ± 0.002 (± 1 s.e., n = 10,000)"


def table(a: np.ndarray, b: np.ndarray) -> list[list[int]]:
    """The 2x2 table statsmodels wants: rows A right/wrong, columns B right/wrong."""
    return [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]


@pytest.mark.parametrize("seed", range(8))
def test_mcnemar_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 3000))
    a = rng.random(n) < rng.uniform(0.5, 0.99)
    b = np.where(rng.random(n) < rng.uniform(0.5, 1.0), a, rng.random(n) < 0.9)  # correlated, as models are
    result = helpers.mcnemar(torch.from_numpy(a), torch.from_numpy(b))
    oracle = statsmodels_mcnemar(table(a, b), exact=True)
    assert (result["b"], result["c"]) == (int((a & ~b).sum()), int((~a & b).sum()))
    assert result["p"] == pytest.approx(oracle.pvalue, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("b, c", [(0, 0), (0, 1), (1, 0), (3, 3), (25, 8), (8, 25), (0, 40), (500, 430)])
def test_mcnemar_matches_statsmodels_on_given_counts(b, c):
    a = np.array([True] * b + [False] * c + [True] * 50)
    other = np.array([False] * b + [True] * c + [True] * 50)
    result = helpers.mcnemar(a, other)
    assert (result["b"], result["c"]) == (b, c)
    assert result["p"] == pytest.approx(statsmodels_mcnemar([[50, b], [c, 0]], exact=True).pvalue, rel=1e-9)


def test_mcnemar_known_values():
    assert helpers.mcnemar([True, False], [True, False])["p"] == 1.0  # no disagreements
    assert helpers.mcnemar([True] * 5, [False] * 5)["p"] == pytest.approx(2 / 32)  # 2 * P(X <= 0), X ~ Bin(5, 1/2)
    assert helpers.mcnemar([True, False], [False, True])["p"] == 1.0  # 2 * 3/4, capped at 1


@pytest.mark.parametrize("a, b, message", [
    ([True, False], [True], "correct_a has 2 examples but correct_b has 1"),
    ([1, 0, 1], [True, False, True], "correct_a must be booleans.*int"),
    ([True], torch.tensor([0.9]), "correct_b must be booleans.*float"),
    ([], [], "must be a non-empty 1-D"),
    (np.ones((2, 2), bool), np.ones((2, 2), bool), "must be a non-empty 1-D"),
])
def test_mcnemar_refuses_bad_input(a, b, message):
    with pytest.raises(ValueError, match=message):
        helpers.mcnemar(a, b)


def test_mean_sd_is_the_sample_standard_deviation():
    values = [0.97, 0.98, 0.985, 0.99]
    mean, sd = helpers.mean_sd(values)
    assert mean == pytest.approx(sum(values) / 4)
    assert sd == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in values) / 3))  # ddof=1, by hand
    assert helpers.mean_sd(torch.tensor(values)) == pytest.approx((mean, sd))
    assert helpers.mean_sd([2.0, 4.0]) == pytest.approx((3.0, math.sqrt(2)))


@pytest.mark.parametrize("values", [[0.98], [], [[0.9, 0.8], [0.7, 0.6]]])
def test_mean_sd_needs_two_values(values):
    with pytest.raises(ValueError, match="at least 2 values"):
        helpers.mean_sd(values)


def pair(b: int, c: int, both: int = 900, neither: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example correctness of two models: b examples only A gets right, c only B, ``both``, ``neither``."""
    a = [True] * b + [False] * c + [True] * both + [False] * neither
    other = [False] * b + [True] * c + [True] * both + [False] * neither
    return torch.tensor(a), torch.tensor(other)


def test_compare_says_beats_only_when_significant():
    a, b = pair(30, 8)  # p = 0.0004
    text = helpers.compare(a, b, names=("CNN", "MLP"))
    assert text.startswith("CNN beats MLP (McNemar p < 0.001):")
    # 930 / 938 = 0.9915, s.e. sqrt(0.9915 * 0.0085 / 938) = 0.0030; 908 / 938 = 0.9680, s.e. 0.0057
    assert "CNN 0.991 ± 0.003, MLP 0.968 ± 0.006 (± 1 s.e., n = 938)" in text
    assert helpers.compare(b, a, names=("MLP", "CNN")).startswith("CNN beats MLP")  # the winner, whichever order


def test_compare_says_about_the_same_otherwise():
    a, b = pair(12, 8)  # p = 0.50: 12 against 8 is what chance gives
    text = helpers.compare(a, b, names=("CNN", "MLP"))
    p = helpers.mcnemar(a, b)["p"]
    assert p > 0.05 and f"p = {p:.2g}" in text
    assert text.startswith("CNN and MLP are about the same (McNemar p = 0.5") and "beats" not in text
    # 912 / 920 = 0.9913, s.e. 0.0031; 908 / 920 = 0.9870, s.e. 0.0037
    assert "CNN 0.991 ± 0.003, MLP 0.987 ± 0.004 (± 1 s.e., n = 920)" in text


def test_compare_never_prints_a_significant_p_as_0_05():
    """Two significant digits would round p = 0.0496 up to 0.05, beside the word "beats"."""
    assert helpers.stats._format_p(0.0496) == "p < 0.05"
    assert helpers.stats._format_p(0.036) == "p = 0.036" and helpers.stats._format_p(0.42) == "p = 0.42"


def test_compare_lines_fit_a_code_cell():
    text = helpers.compare(*pair(30, 8, both=9000), names=("small CNN", "MLP"))
    assert all(len(line) <= 88 for line in text.splitlines())


def test_compare_refuses_bad_names():
    with pytest.raises(ValueError, match="names must be two strings"):
        helpers.compare(*pair(1, 1), names="AB ")


def test_stats_are_exported():
    for name in ("accuracy_se", "mcnemar", "mean_sd", "format_acc", "compare"):
        assert getattr(helpers, name) is getattr(helpers.stats, name) and name in helpers.__all__
