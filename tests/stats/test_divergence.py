"""Drift statistics against scipy on raw samples, and their properties.

Each comparison with scipy states its tolerance. Where binning loses
information (KS, Wasserstein), the tolerance is the bound that the binning
implies, computed from the same bins, plus float rounding.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
import scipy.special
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon as scipy_jensenshannon

from otel_mlmon.stats.divergence import (
    CHI_SQUARE_P_VALUE_THRESHOLD,
    CHI_SQUARE_SMOOTHING,
    JENSEN_SHANNON_THRESHOLD,
    KS_P_VALUE_THRESHOLD,
    PSI_SIGNIFICANT,
    PSI_SMOOTHING,
    PSI_THRESHOLD,
    WASSERSTEIN_THRESHOLD,
    chi_square,
    chi_square_sf,
    jensen_shannon,
    kolmogorov_sf,
    ks_binned,
    psi,
    wasserstein_binned,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Sampler = Callable[[np.random.Generator, int], FloatArray]

# Every statistic must run without a RuntimeWarning, empty windows included.
pytestmark = pytest.mark.filterwarnings("error")

TRAIN_ROWS = 4000
LIVE_ROWS = 1500
BINS = 20


def _zero_inflated(zero_share: float) -> Sampler:
    def sample(rng: np.random.Generator, size: int) -> FloatArray:
        values = rng.exponential(2.0, size)
        values[rng.random(size) < zero_share] = 0.0
        return values

    return sample


# Training and live samplers per case: the first is unchanged, the others
# drift by a shift, a scale change, a change of the zero share or a slide.
CASES: dict[str, tuple[Sampler, Sampler]] = {
    "normal": (
        lambda rng, n: rng.normal(0.0, 1.0, n),
        lambda rng, n: rng.normal(0.0, 1.0, n),
    ),
    "shifted_normal": (
        lambda rng, n: rng.normal(0.0, 1.0, n),
        lambda rng, n: rng.normal(0.5, 1.0, n),
    ),
    "exponential": (
        lambda rng, n: rng.exponential(1.0, n),
        lambda rng, n: rng.exponential(1.4, n),
    ),
    "zero_inflated": (_zero_inflated(0.6), _zero_inflated(0.4)),
    "uniform": (
        lambda rng, n: rng.uniform(0.0, 1.0, n),
        lambda rng, n: rng.uniform(0.2, 1.2, n),
    ),
}


@dataclasses.dataclass
class Samples:
    """Raw training and live values with their baseline bin counts."""

    train: FloatArray
    live: FloatArray
    edges: FloatArray
    expected: IntArray
    actual: IntArray

    @property
    def low(self) -> float:
        return float(min(self.train.min(), self.live.min()))

    @property
    def high(self) -> float:
        return float(max(self.train.max(), self.live.max()))

    @property
    def scale(self) -> float:
        return _fallback_scale(self.train, self.live)


def _quantile_edges(train: FloatArray, bins: int) -> FloatArray:
    """Return deduplicated training quantiles, padded with +inf to bins - 1."""
    levels = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    unique = np.unique(np.quantile(train, levels))
    padding = np.full(bins - 1 - unique.size, np.inf)
    return np.concatenate([unique, padding])


def _bin_counts(values: FloatArray, edges: FloatArray) -> IntArray:
    index = np.searchsorted(edges, values, side="right")
    return np.bincount(index, minlength=edges.size + 1).astype(np.int64)


def _bin_samples(train: FloatArray, live: FloatArray, bins: int) -> Samples:
    edges = _quantile_edges(train, bins)
    return Samples(
        train=train,
        live=live,
        edges=edges,
        expected=_bin_counts(train, edges),
        actual=_bin_counts(live, edges),
    )


def _case_samples(case: str, seed: int = 0) -> Samples:
    make_train, make_live = CASES[case]
    rng = np.random.default_rng(seed)
    train = make_train(rng, TRAIN_ROWS)
    live = make_live(rng, LIVE_ROWS)
    return _bin_samples(train, live, BINS)


def _fallback_scale(train: FloatArray, live: FloatArray) -> float:
    """Return the divisor wasserstein_binned uses for scale=train.std()."""
    spread = max(train.max(), live.max()) - min(train.min(), live.min())
    if train.std() > 0:
        return float(train.std())
    return float(spread) if spread > 0 else 1.0


def _ks_upper_bound(expected: IntArray, actual: IntArray) -> float:
    """Return the largest raw KS statistic that these bin counts allow."""
    p = expected / expected.sum()
    q = actual / actual.sum()
    left = np.concatenate([[0.0], np.cumsum(p)[:-1] - np.cumsum(q)[:-1]])
    return float(max(np.max(left + p), np.max(q - left)))


def _raw_ks_statistic(train: FloatArray, live: FloatArray) -> float:
    """Return scipy's two-sample KS statistic of the raw values."""
    with warnings.catch_warnings():
        # scipy's asymptotic p-value, unused here, divides by zero when
        # n * m / (n + m) rounds to 0 (one value on each side).
        warnings.simplefilter("ignore", RuntimeWarning)
        result = scipy.stats.ks_2samp(train, live, method="asymp")
    return float(result.statistic)


def _wasserstein_error_bound(samples: Samples) -> float:
    """Return sum of bin width times both bins' shares, over the scale."""
    inner = np.clip(samples.edges, samples.low, samples.high)
    knots = np.concatenate([[samples.low], inner, [samples.high]])
    p = samples.expected / samples.expected.sum()
    q = samples.actual / samples.actual.sum()
    return float(np.sum(np.diff(knots) * (p + q)) / samples.scale)


def _wasserstein(samples: Samples) -> float:
    return float(
        wasserstein_binned(
            samples.edges,
            samples.expected,
            samples.actual,
            low=samples.low,
            high=samples.high,
            scale=samples.train.std(),
        )
    )


@pytest.mark.parametrize("case", CASES)
def test_psi_matches_scipy_relative_entropy(case: str) -> None:
    """PSI equals scipy's two relative entropies of the floored shares."""
    samples = _case_samples(case)
    p = np.maximum(samples.expected / TRAIN_ROWS, PSI_SMOOTHING)
    q = np.maximum(samples.actual / LIVE_ROWS, PSI_SMOOTHING)
    reference = np.sum(scipy.special.rel_entr(q, p) + scipy.special.rel_entr(p, q))

    # The formula is the same and only the order of the sum differs, so
    # the tolerance covers rounding only.
    assert float(psi(samples.expected, samples.actual)) == pytest.approx(
        reference, rel=1e-12
    )


def test_psi_unsmoothed_matches_scipy_entropy() -> None:
    """Without empty bins, PSI is KL(q || p) + KL(p || q) by scipy."""
    samples = _case_samples("shifted_normal")
    assert samples.expected.min() > 0
    assert samples.actual.min() > 0
    reference = scipy.stats.entropy(
        samples.actual, samples.expected
    ) + scipy.stats.entropy(samples.expected, samples.actual)

    assert float(psi(samples.expected, samples.actual)) == pytest.approx(
        reference, rel=1e-12
    )


def test_psi_empty_bin_is_floored() -> None:
    """A bin empty on one side counts with the share PSI_SMOOTHING."""
    expected = np.array([50.0, 50.0])
    actual = np.array([100.0, 0.0])
    by_hand = (1.0 - 0.5) * math.log(1.0 / 0.5) + (PSI_SMOOTHING - 0.5) * math.log(
        PSI_SMOOTHING / 0.5
    )

    assert float(psi(expected, actual)) == pytest.approx(by_hand, rel=1e-12)
    assert float(psi(expected, actual, smoothing=0.01)) < by_hand


def test_psi_null_mean_matches_noise_estimate() -> None:
    """With no drift, PSI averages about (bins - 1) * (1/n + 1/m)."""
    rng = np.random.default_rng(3)
    bins, n, m, draws = 10, 2000, 500, 4000
    shares = np.full(bins, 1.0 / bins)
    expected = rng.multinomial(n, shares, size=draws)
    actual = rng.multinomial(m, shares, size=draws)
    estimate = (bins - 1) * (1.0 / n + 1.0 / m)

    # The estimate is the chi-square approximation of PSI. With 4000 draws
    # the standard error of the mean is 0.75%, well inside 5%.
    assert float(np.mean(psi(expected, actual))) == pytest.approx(estimate, rel=0.05)


@pytest.mark.parametrize("case", CASES)
def test_jensen_shannon_matches_scipy(case: str) -> None:
    """The distance equals scipy's jensenshannon with base 2."""
    samples = _case_samples(case)
    reference = scipy_jensenshannon(samples.expected, samples.actual, base=2)

    # The formula is the same, but the square root turns a rounding error
    # e of the divergence d into e / (2 sqrt(d)), so allow 1e-12 absolute.
    assert float(jensen_shannon(samples.expected, samples.actual)) == pytest.approx(
        reference, rel=0, abs=1e-12
    )


@pytest.mark.parametrize("case", CASES)
def test_ks_binned_brackets_raw_statistic(case: str) -> None:
    """The raw KS statistic lies between the binned one and its bound."""
    samples = _case_samples(case)
    binned = ks_binned(samples.expected, samples.actual, TRAIN_ROWS, LIVE_ROWS)
    raw = _raw_ks_statistic(samples.train, samples.live)
    upper = _ks_upper_bound(samples.expected, samples.actual)
    largest_share = max(
        samples.expected.max() / TRAIN_ROWS, samples.actual.max() / LIVE_ROWS
    )

    # Binned CDFs are the raw CDFs' left limits at the edges, so the binned
    # maximum cannot exceed the raw one. Within a bin, the raw difference
    # moves at most one bin's share away from its value at the left edge.
    assert float(binned.statistic) <= raw + 1e-12
    assert raw <= upper + 1e-12
    assert upper <= float(binned.statistic) + largest_share + 1e-12


@pytest.mark.parametrize("case", CASES)
def test_ks_binned_matches_scipy_on_bin_indices(case: str) -> None:
    """On data reduced to bin indices, scipy's KS statistic is the binned one."""
    samples = _case_samples(case)
    binned = ks_binned(samples.expected, samples.actual, TRAIN_ROWS, LIVE_ROWS)
    train_bins = np.searchsorted(samples.edges, samples.train, side="right")
    live_bins = np.searchsorted(samples.edges, samples.live, side="right")
    reference = scipy.stats.ks_2samp(train_bins, live_bins, method="asymp")
    effective = TRAIN_ROWS * LIVE_ROWS / (TRAIN_ROWS + LIVE_ROWS)

    # The ECDF of bin indices at index k is the binned CDF after bin k.
    assert float(binned.statistic) == pytest.approx(
        reference.statistic, rel=0, abs=1e-12
    )
    # scipy's asymptotic p-value is the finite-n distribution kstwo at
    # n = round(en); the limit used here lies above it, by at most
    # 0.28 / sqrt(en) for en from 100 to 10,000 (measured on a grid).
    gap = float(binned.p_value) - reference.pvalue
    assert gap >= -1e-12
    assert gap <= 0.3 / math.sqrt(effective)


@pytest.mark.parametrize("case", CASES)
def test_ks_binned_p_value_matches_kstwobign(case: str) -> None:
    """The p-value is scipy's kstwobign survival at sqrt(en) * statistic."""
    samples = _case_samples(case)
    binned = ks_binned(samples.expected, samples.actual, TRAIN_ROWS, LIVE_ROWS)
    effective = TRAIN_ROWS * LIVE_ROWS / (TRAIN_ROWS + LIVE_ROWS)
    reference = scipy.stats.kstwobign.sf(math.sqrt(effective) * float(binned.statistic))

    assert float(binned.p_value) == pytest.approx(reference, rel=1e-10)


def test_kolmogorov_sf_matches_kstwobign() -> None:
    """Both series agree with scipy's kstwobign across the switch at 1."""
    x = np.concatenate([np.linspace(0.0, 12.0, 4001), [0.05, 1.0 - 1e-12, 1.0]])
    reference = scipy.stats.kstwobign.sf(x)
    mine = kolmogorov_sf(x)

    # Ten terms of either series leave a truncation error below 1e-80, so
    # only rounding is left.
    np.testing.assert_allclose(mine, reference, rtol=1e-12, atol=1e-300)
    assert kolmogorov_sf(-1.0) == 1.0
    assert np.isnan(kolmogorov_sf(np.nan))


@pytest.mark.parametrize("case", CASES)
def test_wasserstein_within_binning_bound(case: str) -> None:
    """The binned distance is within width times mass of scipy's raw one."""
    samples = _case_samples(case)
    raw = scipy.stats.wasserstein_distance(samples.train, samples.live)
    raw_scaled = raw / samples.scale
    bound = _wasserstein_error_bound(samples)

    # Each CDF is only known to stay within its bin's share inside a bin,
    # so the CDF difference is known to an interval of p_k + q_k there.
    assert abs(_wasserstein(samples) - raw_scaled) <= bound + 1e-12


def test_wasserstein_closes_outer_bins() -> None:
    """The outer bins end at low and high, with linear CDFs inside."""
    # Expected shares 0.5, 0, 0.5 and actual 0, 1, 0 over [0, 3] with edges
    # 1 and 2: the CDF difference goes 0, 0.5, -0.5, 0, so the area is
    # 0.25 per bin, the middle one as two triangles.
    distance = wasserstein_binned(
        [1.0, 2.0], [5, 0, 5], [0, 3, 0], low=0.0, high=3.0, scale=1.0
    )

    assert float(distance) == pytest.approx(0.75, rel=1e-15)


def test_wasserstein_scale_falls_back_to_range() -> None:
    """A zero scale divides by high - low, or by 1 when that is 0 too."""
    edges = np.array([1.0])
    expected = np.array([4, 0])
    actual = np.array([0, 4])
    unscaled = wasserstein_binned(edges, expected, actual, low=0.0, high=4.0, scale=1.0)
    by_range = wasserstein_binned(edges, expected, actual, low=0.0, high=4.0, scale=0.0)
    constant = wasserstein_binned([3.0], [0, 4], [0, 4], low=3.0, high=3.0, scale=0.0)

    assert float(by_range) == pytest.approx(float(unscaled) / 4.0)
    assert float(constant) == 0.0


def _categories(rng: np.random.Generator, shares: list[float], rows: int) -> IntArray:
    probabilities = np.array(shares) / np.sum(shares)
    return rng.multinomial(rows, probabilities).astype(np.int64)


@pytest.mark.parametrize(
    ("train_shares", "live_shares"),
    [
        pytest.param([5, 3, 2, 1, 1], [5, 3, 2, 1, 1], id="unchanged"),
        pytest.param([5, 3, 2, 1, 1], [4, 3, 3, 1, 1], id="mild"),
        pytest.param([5, 3, 2, 1, 1], [1, 1, 2, 3, 5], id="reversed"),
        pytest.param([1.0] * 300, [1.0] * 150 + [1.5] * 150, id="300_categories"),
    ],
)
def test_chi_square_matches_scipy(
    train_shares: list[float], live_shares: list[float]
) -> None:
    """Statistic and p-value equal scipy's chisquare on scaled shares."""
    rng = np.random.default_rng(len(train_shares))
    expected = _categories(rng, train_shares, 20_000)
    observed = _categories(rng, live_shares, 3000)
    assert expected.min() > 0
    f_exp = expected / expected.sum() * observed.sum()
    reference = scipy.stats.chisquare(observed, f_exp)
    result = chi_square(expected, observed)

    # No category has a zero training count, so no smoothing applies.
    assert float(result.statistic) == pytest.approx(reference.statistic, rel=1e-9)
    assert float(result.p_value) == pytest.approx(
        reference.pvalue, rel=1e-9, abs=1e-300
    )


def test_chi_square_sf_matches_scipy() -> None:
    """The incomplete gamma function matches scipy's chi2.sf for dof to 1e4."""
    worst = 0.0
    for dof in [1, 2, 3, 7, 30, 99, 1000, 10_000]:
        x = np.concatenate(
            [np.linspace(0.0, 3.0 * dof + 60.0, 301), [dof - 1, dof, dof + 2]]
        )
        reference = scipy.stats.chi2.sf(x, dof)
        mine = chi_square_sf(x, dof)
        checked = reference > 1e-290
        error = np.abs(mine[checked] - reference[checked]) / reference[checked]
        worst = max(worst, float(error.max()))

    # The exponent dof/2 * ln(x/2) - x/2 - lgamma(dof/2) is exact to about
    # 1e-16 of its terms' size, 4e4 at dof = 10,000, so about 1e-11 of the
    # result is rounding there.
    assert worst < 1e-10


def test_chi_square_new_category_is_smoothed() -> None:
    """A category new in live data adds the pseudo-count to every category."""
    expected = np.array([600, 300, 100, 0])
    observed = np.array([55, 30, 10, 5])
    smoothed = expected + CHI_SQUARE_SMOOTHING
    predicted = smoothed / smoothed.sum() * observed.sum()
    by_hand = float(np.sum((observed - predicted) ** 2 / predicted))
    result = chi_square(expected, observed)

    assert float(result.statistic) == pytest.approx(by_hand, rel=1e-12)
    assert float(result.p_value) == pytest.approx(
        scipy.stats.chi2.sf(by_hand, 3), rel=1e-9
    )
    assert float(result.p_value) < CHI_SQUARE_P_VALUE_THRESHOLD


def test_chi_square_ignores_empty_categories() -> None:
    """Categories empty in both samples change neither statistic nor dof."""
    expected = np.array([600, 300, 100])
    observed = np.array([55, 35, 10])
    padded = chi_square(np.append(expected, [0, 0]), np.append(observed, [0, 0]))
    plain = chi_square(expected, observed)

    assert float(padded.statistic) == float(plain.statistic)
    assert float(padded.p_value) == float(plain.p_value)


def test_chi_square_single_category_has_no_drift() -> None:
    """One category on both sides gives statistic 0 and p-value 1."""
    result = chi_square([0, 40, 0], [0, 7, 0])

    assert float(result.statistic) == 0.0
    assert float(result.p_value) == 1.0


def test_zero_padding_changes_nothing() -> None:
    """Bins padded with zero counts and +inf edges leave every result as is."""
    samples = _case_samples("exponential")
    zeros = np.zeros(3, dtype=np.int64)
    expected = np.append(samples.expected, zeros)
    actual = np.append(samples.actual, zeros)
    edges = np.append(samples.edges, np.full(3, np.inf))
    plain_ks = ks_binned(samples.expected, samples.actual, TRAIN_ROWS, LIVE_ROWS)
    padded_ks = ks_binned(expected, actual, TRAIN_ROWS, LIVE_ROWS)
    padded_wasserstein = wasserstein_binned(
        edges,
        expected,
        actual,
        low=samples.low,
        high=samples.high,
        scale=samples.train.std(),
    )

    # Only the order of the sums changes, so the tolerance covers rounding.
    assert float(psi(expected, actual)) == pytest.approx(
        float(psi(samples.expected, samples.actual)), rel=1e-12
    )
    assert float(jensen_shannon(expected, actual)) == pytest.approx(
        float(jensen_shannon(samples.expected, samples.actual)), rel=1e-12
    )
    assert float(padded_ks.statistic) == float(plain_ks.statistic)
    assert float(padded_ks.p_value) == float(plain_ks.p_value)
    assert float(padded_wasserstein) == pytest.approx(_wasserstein(samples), rel=1e-12)


def test_empty_window_gives_nan() -> None:
    """Zero live rows give NaN from every statistic, with no warning."""
    expected = np.array([10, 20, 30])
    empty = np.zeros(3)
    ks = ks_binned(expected, empty, 60, 0)
    chi = chi_square(expected, empty)
    wasserstein = wasserstein_binned(
        [0.0, 1.0], expected, empty, low=-1.0, high=2.0, scale=1.0
    )

    assert np.isnan(psi(expected, empty))
    assert np.isnan(jensen_shannon(expected, empty))
    assert np.isnan(ks.statistic)
    assert np.isnan(ks.p_value)
    assert np.isnan(wasserstein)
    assert np.isnan(chi.statistic)
    assert np.isnan(chi.p_value)


def test_empty_baseline_gives_nan() -> None:
    """Zero training rows give NaN too, as there is nothing to compare."""
    empty = np.zeros(3)
    actual = np.array([1, 2, 3])

    assert np.isnan(psi(empty, actual))
    assert np.isnan(jensen_shannon(empty, actual))
    assert np.isnan(ks_binned(empty, actual, 0, 6).p_value)
    assert np.isnan(chi_square(empty, actual).p_value)


def test_empty_row_leaves_other_features() -> None:
    """Only the feature with an empty window gets NaN."""
    expected = np.array([[10, 20, 30], [10, 20, 30]])
    actual = np.array([[10, 20, 30], [0, 0, 0]])
    scores = psi(expected, actual)

    assert scores[0] == 0.0
    assert np.isnan(scores[1])


def test_constant_feature_unchanged_no_drift() -> None:
    """A feature with all its mass in one bin on both sides shows no drift."""
    samples = _bin_samples(np.full(500, 5.0), np.full(80, 5.0), 10)
    ks = ks_binned(samples.expected, samples.actual, 500, 80)

    assert float(psi(samples.expected, samples.actual)) == 0.0
    assert float(jensen_shannon(samples.expected, samples.actual)) == 0.0
    assert float(ks.statistic) == 0.0
    assert float(ks.p_value) == 1.0
    assert _wasserstein(samples) == 0.0


def test_constant_feature_moved_below_drifts() -> None:
    """Live values below a constant training value drift on every statistic."""
    samples = _bin_samples(np.full(500, 5.0), np.full(80, 3.0), 10)
    ks = ks_binned(samples.expected, samples.actual, 500, 80)

    assert float(psi(samples.expected, samples.actual)) > PSI_SIGNIFICANT
    assert float(jensen_shannon(samples.expected, samples.actual)) == 1.0
    assert float(ks.statistic) == 1.0
    assert float(ks.p_value) < 1e-10
    # The CDF difference falls linearly from 0 at 3 to -1 at 5, over the
    # range 2 that replaces the zero std: area 1, scaled 0.5.
    assert _wasserstein(samples) == pytest.approx(0.5)


def test_thresholds_separate_no_drift_from_shift() -> None:
    """Every default threshold passes unchanged data and flags a 0.5 std shift."""
    unchanged = _case_samples("normal")
    shifted = _case_samples("shifted_normal")
    verdicts = []
    for samples in (unchanged, shifted):
        ks = ks_binned(samples.expected, samples.actual, TRAIN_ROWS, LIVE_ROWS)
        verdicts.append(
            [
                float(psi(samples.expected, samples.actual)) > PSI_THRESHOLD,
                float(jensen_shannon(samples.expected, samples.actual))
                > JENSEN_SHANNON_THRESHOLD,
                float(ks.p_value) < KS_P_VALUE_THRESHOLD,
                _wasserstein(samples) > WASSERSTEIN_THRESHOLD,
            ]
        )

    assert verdicts[0] == [False, False, False, False]
    assert verdicts[1] == [True, True, True, True]


def test_features_vectorise_like_single_rows() -> None:
    """A (features, bins) call gives exactly the per-feature results."""
    rows = [_case_samples(case, seed=7) for case in CASES]
    edges = np.stack([row.edges for row in rows])
    expected = np.stack([row.expected for row in rows])
    actual = np.stack([row.actual for row in rows])
    low = np.array([row.low for row in rows])
    high = np.array([row.high for row in rows])
    scale = np.array([row.train.std() for row in rows])
    ks = ks_binned(expected, actual, TRAIN_ROWS, LIVE_ROWS)
    chi = chi_square(expected, actual)
    wasserstein = wasserstein_binned(
        edges, expected, actual, low=low, high=high, scale=scale
    )

    for i, row in enumerate(rows):
        single_ks = ks_binned(row.expected, row.actual, TRAIN_ROWS, LIVE_ROWS)
        single_chi = chi_square(row.expected, row.actual)
        assert psi(expected, actual)[i] == psi(row.expected, row.actual)
        assert jensen_shannon(expected, actual)[i] == jensen_shannon(
            row.expected, row.actual
        )
        assert ks.statistic[i] == single_ks.statistic
        assert ks.p_value[i] == single_ks.p_value
        assert wasserstein[i] == _wasserstein(row)
        assert chi.statistic[i] == single_chi.statistic
        assert chi.p_value[i] == single_chi.p_value


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: psi([1, -1], [1, 1]), "must be finite and >= 0"),
        (lambda: psi([1, np.nan], [1, 1]), "must be finite and >= 0"),
        (lambda: psi([1, 2, 3], [1, 2]), "3 bins but actual_counts has 2"),
        (lambda: psi(np.ones((2, 3)), np.ones((3, 3))), "do not broadcast"),
        (lambda: psi(5, 5), "at least one bin"),
        (lambda: psi([1], [1], smoothing=0.0), "Invalid smoothing"),
        (lambda: chi_square([1], [1], smoothing=-1.0), "Invalid smoothing"),
        (lambda: ks_binned([1, 1], [1, 1], -1, 2), "Invalid n_expected"),
        (lambda: chi_square_sf(1.0, 0), "Invalid dof"),
        (
            lambda: wasserstein_binned(
                [2.0, 1.0], [1, 1, 1], [1, 1, 1], low=0, high=3, scale=1
            ),
            "non-decreasing",
        ),
        (
            lambda: wasserstein_binned([1.0], [1, 1], [1, 1], low=2, high=0, scale=1),
            "low <= high",
        ),
        (
            lambda: wasserstein_binned([1.0], [1, 1], [1, 1], low=0, high=2, scale=-1),
            "Invalid scale",
        ),
        (
            lambda: wasserstein_binned(
                [1.0, 2.0], [1, 1], [1, 1], low=0, high=2, scale=1
            ),
            "one edge fewer than bins",
        ),
    ],
)
def test_invalid_input_raises(call: Callable[[], object], message: str) -> None:
    """Invalid counts, shapes and parameters raise ValueError naming them."""
    with pytest.raises(ValueError, match=message):
        call()


# Small integers give ties, including values equal to a bin edge.
_values = st.one_of(
    st.integers(-5, 5).map(float),
    st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False),
)
_samples = st.lists(_values, min_size=1, max_size=200).map(
    lambda values: np.array(values, dtype=np.float64)
)


@settings(max_examples=150, deadline=None)
@given(values=_samples, bins=st.integers(1, 12), factor=st.integers(1, 5))
def test_identical_samples_show_no_drift(
    values: FloatArray, bins: int, factor: int
) -> None:
    """Equal shares give exactly 0 for every distance and p-value 1."""
    samples = _bin_samples(values, values, bins)
    counts = samples.expected
    scaled = counts * factor
    ks = ks_binned(counts, scaled, counts.sum(), scaled.sum())
    chi = chi_square(counts, counts)

    assert float(psi(counts, scaled)) == 0.0
    assert float(jensen_shannon(counts, scaled)) == 0.0
    assert float(ks.statistic) == 0.0
    assert float(ks.p_value) == 1.0
    assert _wasserstein(samples) == 0.0
    assert float(chi.statistic) == 0.0
    assert float(chi.p_value) == 1.0


@settings(max_examples=100, deadline=None)
@given(
    train=_samples,
    live=_samples,
    bins=st.integers(1, 12),
    cuts=st.lists(st.integers(0, 200), max_size=6),
)
def test_batched_counts_equal_pooled(
    train: FloatArray, live: FloatArray, bins: int, cuts: list[int]
) -> None:
    """Counts summed over any split into batches give the pooled results."""
    edges = _quantile_edges(train, bins)
    expected = _bin_counts(train, edges)
    batches = np.split(live, sorted(min(cut, live.size) for cut in cuts))
    accumulated = np.zeros(bins, dtype=np.int64)
    for batch in batches:
        accumulated += _bin_counts(batch, edges)
    pooled = _bin_counts(live, edges)
    low = min(train.min(), live.min())
    high = max(train.max(), live.max())

    def results(actual: IntArray) -> list[float]:
        ks = ks_binned(expected, actual, train.size, live.size)
        chi = chi_square(expected, actual)
        distance = wasserstein_binned(
            edges, expected, actual, low=low, high=high, scale=train.std()
        )
        return [
            float(psi(expected, actual)),
            float(jensen_shannon(expected, actual)),
            float(ks.statistic),
            float(ks.p_value),
            float(distance),
            float(chi.statistic),
            float(chi.p_value),
        ]

    np.testing.assert_array_equal(accumulated, pooled)
    assert results(accumulated) == results(pooled)


@settings(max_examples=150, deadline=None)
@given(train=_samples, live=_samples, bins=st.integers(1, 12))
def test_binning_bounds_hold_for_any_data(
    train: FloatArray, live: FloatArray, bins: int
) -> None:
    """KS and Wasserstein stay within their binning bounds of scipy's values."""
    samples = _bin_samples(train, live, bins)
    ks = ks_binned(samples.expected, samples.actual, train.size, live.size)
    raw_ks = _raw_ks_statistic(train, live)
    raw_wasserstein = scipy.stats.wasserstein_distance(train, live)
    scaled = raw_wasserstein / samples.scale
    # Rounding of sums over values up to 1e3 in size.
    rounding = 1e-9 * (1.0 + scaled)

    assert float(ks.statistic) <= raw_ks + 1e-12
    assert raw_ks <= _ks_upper_bound(samples.expected, samples.actual) + 1e-12
    assert abs(_wasserstein(samples) - scaled) <= (
        _wasserstein_error_bound(samples) + rounding
    )
