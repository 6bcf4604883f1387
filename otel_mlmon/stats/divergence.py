"""Drift statistics that compare live bin counts with a training baseline.

Every function takes counts per bin along the last axis, so a (bins,) array
gives one result, as a 0-d array, and a (features, bins) array gives one
result per feature. Other leading axes broadcast. Numeric features count a
value ``x`` into bin ``np.searchsorted(edges, x, side="right")``, where
``edges`` are the baseline's sorted inner edges and the outer bins are open.
Categorical features count their top categories, then "other", then values
unseen in training.

PSI, Jensen-Shannon and chi-square treat the missing-value bin as one more
bin when the caller passes it. Kolmogorov-Smirnov and Wasserstein need bins
ordered along the value axis, so pass them the value bins only.

Bins that are empty in both inputs add nothing to PSI, Jensen-Shannon,
KS or chi-square, so features with fewer bins can share one array padded
at the end with zero counts. For Wasserstein, pad the edges with +inf too,
which gives the padding bins a width of 0.

An empty input (a total count of 0, such as a live window with no rows)
gives NaN for the statistic and the p-value, without a RuntimeWarning.
NaN means "no verdict": it compares False with every threshold.

The functions use numpy and the standard library only, so scipy is not
needed at run time.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Default thresholds. The distance thresholds of 0.1 and the KS level of
# 0.05 are the defaults of evidently's drift tests (the psi, jensenshannon,
# wasserstein_distance_norm and ks_stattest modules of
# evidently.legacy.calculations.stattests). 0.05 is also the conventional
# significance level of a hypothesis test, used here for chi-square.

#: PSI above which a feature counts as drifted, the start of the moderate band.
PSI_THRESHOLD = 0.1
#: Lower end of PSI's "moderate shift" band, by the rule of thumb of
#: credit-risk scorecard monitoring. Below it, PSI reads as no real shift.
PSI_MODERATE = 0.1
#: Lower end of PSI's "significant shift" band, by the same rule of thumb.
PSI_SIGNIFICANT = 0.25
#: Jensen-Shannon distance (base 2) above which a feature counts as drifted.
JENSEN_SHANNON_THRESHOLD = 0.1
#: Wasserstein distance over the baseline's std, above which drift is flagged.
WASSERSTEIN_THRESHOLD = 0.1
#: KS p-value below which a numeric feature counts as drifted.
KS_P_VALUE_THRESHOLD = 0.05
#: Chi-square p-value below which a categorical feature counts as drifted.
CHI_SQUARE_P_VALUE_THRESHOLD = 0.05

#: Minimum share of a bin in PSI, chosen as :func:`psi` explains.
PSI_SMOOTHING = 1e-4
#: Pseudo-count added to training counts when a live category has none in
#: training, chosen as :func:`chi_square` explains.
CHI_SQUARE_SMOOTHING = 0.5

# Terms of the two Kolmogorov series. At the switch point x = 1, the tenth
# term is below 1e-80 in both, far under double precision.
_KOLMOGOROV_TERMS = np.arange(1, 11, dtype=np.float64)
# Below this x, the Kolmogorov CDF is under 1e-200, so its survival
# function is 1 in double precision.
_KOLMOGOROV_MIN_X = 0.05
# Convergence and iteration limits of the incomplete gamma function.
_GAMMA_EPSILON = 1e-16
_GAMMA_MAX_ITERATIONS = 100_000
_LENTZ_TINY = 1e-300


class DriftTestResult(NamedTuple):
    """Statistic and p-value of a two-sample test, one per feature."""

    statistic: FloatArray
    p_value: FloatArray


def psi(
    expected_counts: npt.ArrayLike,
    actual_counts: npt.ArrayLike,
    *,
    smoothing: float = PSI_SMOOTHING,
) -> FloatArray:
    """Compute the Population Stability Index of live against training bins.

    PSI is the sum over bins of ``(a - e) * ln(a / e)``, where ``e`` and
    ``a`` are the training and live shares of a bin. It equals
    KL(a || e) + KL(e || a), so it is 0 for equal shares and unbounded.

    Smoothing: each share is raised to at least ``smoothing`` before the
    logarithm, so a bin that is empty on one side adds at most
    ``share * ln(share / smoothing)`` (9.2 times the share at the default)
    instead of infinity. A floor was chosen over a pseudo-count because it
    changes no share that is already at least ``smoothing``. With fewer
    than ``1 / smoothing`` rows (10,000 at the default), that is every
    non-empty bin, so PSI is the textbook value whenever no bin is empty.
    Equal shares also give exactly 0, even with empty bins. The default
    1e-4 is the share that evidently's PSI gives an empty bin (unless some
    share is below 1e-4), so the usual thresholds keep their meaning.

    NOTE: with no drift, PSI averages about
    ``(bins - 1) * (1 / n_expected + 1 / n_actual)`` from sampling noise
    alone, so small windows over many bins can pass 0.1 by chance.

    Args:
        expected_counts: Training counts or shares per bin.
        actual_counts: Live counts or shares per bin, same bins.
        smoothing: Minimum share of a bin, in (0, 1).

    Returns:
        PSI per feature, NaN where either side has a total of 0.

    Raises:
        ValueError: The counts are negative, not finite or of unequal bins,
            or ``smoothing`` is outside (0, 1).
    """
    if not 0.0 < smoothing < 1.0:
        raise ValueError(
            f"Invalid smoothing={smoothing!r}: expected a share in (0, 1), "
            f"such as the default {PSI_SMOOTHING}"
        )
    expected, actual = _aligned_counts(expected_counts, actual_counts)
    expected_shares, expected_valid = _shares(expected)
    actual_shares, actual_valid = _shares(actual)

    expected_shares = np.maximum(expected_shares, smoothing)
    actual_shares = np.maximum(actual_shares, smoothing)
    terms = (actual_shares - expected_shares) * (
        np.log(actual_shares) - np.log(expected_shares)
    )
    return _no_verdict(terms.sum(axis=-1), expected_valid & actual_valid)


def jensen_shannon(
    expected_counts: npt.ArrayLike, actual_counts: npt.ArrayLike
) -> FloatArray:
    """Compute the Jensen-Shannon distance, in base 2, between two binnings.

    The distance is the square root of the divergence
    ``(KL(p || m) + KL(q || m)) / 2`` with ``m = (p + q) / 2`` and base-2
    logarithms, so it lies in [0, 1]. This is how
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)`` defines it
    (scipy 1.17, which the tests compare with). No smoothing is
    needed, because ``m`` is positive wherever ``p`` or ``q`` is.

    Args:
        expected_counts: Training counts or shares per bin.
        actual_counts: Live counts or shares per bin, same bins.

    Returns:
        The distance per feature, NaN where either side has a total of 0.

    Raises:
        ValueError: The counts are negative, not finite or of unequal bins.
    """
    expected, actual = _aligned_counts(expected_counts, actual_counts)
    expected_shares, expected_valid = _shares(expected)
    actual_shares, actual_valid = _shares(actual)

    mixture = (expected_shares + actual_shares) / 2.0
    divergence = (
        _relative_entropy(expected_shares, mixture)
        + _relative_entropy(actual_shares, mixture)
    ) / (2.0 * math.log(2.0))
    # Rounding can leave a sum a few ulps below 0 for nearly equal shares,
    # and the square root of that would be NaN.
    distance = np.sqrt(np.maximum(divergence, 0.0))
    return _no_verdict(distance, expected_valid & actual_valid)


def ks_binned(
    expected_counts: npt.ArrayLike,
    actual_counts: npt.ArrayLike,
    n_expected: npt.ArrayLike,
    n_actual: npt.ArrayLike,
) -> DriftTestResult:
    """Run the two-sample Kolmogorov-Smirnov test on two binned samples.

    The statistic is the maximum absolute difference of the two empirical
    CDFs at the inner bin edges. Bins are closed on the left, so these are
    the CDFs' left limits there, and the statistic is a lower bound on the
    KS statistic D of the raw samples. Within bin k the raw CDF difference
    stays in ``[d - q_k, d + p_k]``, where ``d`` is the binned difference
    at the bin's left edge and ``p_k``, ``q_k`` the bin's expected and
    actual shares. Hence ``D <= max_k max(d + p_k, q_k - d)``, which is at
    most the binned statistic plus the largest share of any one bin.

    The p-value is asymptotic: the survival function of the Kolmogorov
    distribution at ``sqrt(n * m / (n + m)) * statistic``, the limit for
    large samples. Binning and ties only lower the statistic, so the
    p-value errs on the large side (fewer drift verdicts, not more). The
    limit also lies above the finite-sample tail: by up to
    ``0.28 / sqrt(en)`` against scipy's ``kstwo`` for ``en`` from 100 to
    10,000, as measured on a grid.

    Args:
        expected_counts: Training counts or shares per value bin, in order
            of value, without the missing-value bin.
        actual_counts: Live counts or shares per value bin, same bins.
        n_expected: Training rows behind ``expected_counts``, not counting
            missing values. Scalar or one per feature.
        n_actual: Live rows behind ``actual_counts``, likewise.

    Returns:
        The statistic in [0, 1] and the p-value per feature, both NaN where
        a total count or a row count is 0.

    Raises:
        ValueError: The counts or row counts are negative or not finite, or
            the counts have unequal bins.
    """
    expected, actual = _aligned_counts(expected_counts, actual_counts)
    rows_expected = _row_count("n_expected", n_expected)
    rows_actual = _row_count("n_actual", n_actual)
    valid = (expected.sum(axis=-1) > 0) & (actual.sum(axis=-1) > 0)
    valid = valid & (rows_expected > 0) & (rows_actual > 0)

    gap = np.abs(_cdf_at_edges(expected) - _cdf_at_edges(actual))
    statistic = gap.max(axis=-1, initial=0.0)

    total_rows = rows_expected + rows_actual
    effective = rows_expected * rows_actual / np.where(valid, total_rows, 1.0)
    p_value = kolmogorov_sf(np.sqrt(effective) * statistic)
    return DriftTestResult(
        statistic=_no_verdict(statistic, valid),
        p_value=_no_verdict(p_value, valid),
    )


def wasserstein_binned(
    edges: npt.ArrayLike,
    expected_counts: npt.ArrayLike,
    actual_counts: npt.ArrayLike,
    *,
    low: npt.ArrayLike,
    high: npt.ArrayLike,
    scale: npt.ArrayLike,
) -> FloatArray:
    """Compute the 1-D Wasserstein distance between two binned samples.

    The distance is the integral over x of the absolute difference of the
    two CDFs, divided by ``scale``. The open outer bins are closed at
    ``low`` and ``high``, and inner edges are clipped to that range, so
    +inf padding gives empty bins of width 0. Each CDF is taken as linear
    within a bin, as if the bin's values were spread evenly over it.

    Within bin k the raw CDF difference and this linear one both stay in
    an interval of length ``p_k + q_k`` (the bin's expected and actual
    shares). So if every value lies in ``[low, high]``, this result differs
    from the raw samples' distance by at most
    ``sum_k width_k * (p_k + q_k) / scale``.

    NOTE: a shift that stays inside one bin is invisible here. A constant
    training feature has one wide bin from its value up, so a live window
    whose values all lie at or above it gives 0. The baseline's range
    checks catch that case.

    Args:
        edges: Sorted inner edges, one fewer than the bins.
        expected_counts: Training counts or shares per value bin, without
            the missing-value bin.
        actual_counts: Live counts or shares per value bin, same bins.
        low: Lower end of the first bin, such as the minimum of the
            training and live values. Scalar or one per feature.
        high: Upper end of the last bin, such as their maximum.
        scale: Divisor, usually the baseline's std. Where it is 0 the
            function divides by ``high - low``, and by 1 if that is also 0.

    Returns:
        The scaled distance per feature, NaN where either side has a total
        of 0.

    Raises:
        ValueError: The counts are negative, not finite or of unequal bins,
            the edges are unsorted or do not match the bins, ``low`` or
            ``high`` is not finite or ``low > high``, or ``scale`` is
            negative or not finite.
    """
    expected, actual = _aligned_counts(expected_counts, actual_counts)
    knots = _bin_knots(edges, low, high, expected.shape)
    divisor = _wasserstein_scale(scale, knots[..., 0], knots[..., -1])
    valid = (expected.sum(axis=-1) > 0) & (actual.sum(axis=-1) > 0)

    inner = _cdf_at_edges(expected) - _cdf_at_edges(actual)
    zero = np.zeros((*inner.shape[:-1], 1))
    difference = np.concatenate([zero, inner, zero], axis=-1)
    area = _area_between(np.diff(knots, axis=-1), difference)
    return _no_verdict(area.sum(axis=-1) / divisor, valid)


def chi_square(
    expected_counts: npt.ArrayLike,
    actual_counts: npt.ArrayLike,
    *,
    smoothing: float = CHI_SQUARE_SMOOTHING,
) -> DriftTestResult:
    """Run Pearson's chi-square goodness-of-fit test of live categories.

    The expected live counts are the training shares times the live total.
    The statistic is the sum of ``(observed - expected) ** 2 / expected``,
    with ``categories - 1`` degrees of freedom, as in
    ``scipy.stats.chisquare``. Categories with no training and no live
    rows are dropped, so zero padding and an empty "unseen" bin change
    nothing.

    Smoothing: if a category has live rows but no training rows (a value
    new since training), its expected count would be 0 and the statistic
    infinite. For such a feature only, ``smoothing`` is added to the
    training count of each category seen in either sample. The default 0.5
    gives the posterior mean shares under the Jeffreys prior of a
    multinomial. A new category then gets the share of half a training
    row, so the more training rows missed it, the stronger the evidence of
    drift. Features without such a category get the textbook test.

    Args:
        expected_counts: Training counts per category. Counts, not shares,
            because the smoothing is in training rows.
        actual_counts: Live counts per category, same categories.
        smoothing: Pseudo-count for features with a new category, > 0.

    Returns:
        The statistic and the p-value per feature, both NaN where either
        side has a total of 0. A feature with one category left has
        statistic 0 and p-value 1.

    Raises:
        ValueError: The counts are negative, not finite or of unequal
            categories, or ``smoothing`` is not positive.
    """
    if not 0.0 < smoothing < math.inf:
        raise ValueError(
            f"Invalid smoothing={smoothing!r}: expected a positive "
            f"pseudo-count, such as the default {CHI_SQUARE_SMOOTHING}"
        )
    expected, observed = _aligned_counts(expected_counts, actual_counts)
    present = (expected > 0) | (observed > 0)
    live_total = observed.sum(axis=-1)
    valid = (expected.sum(axis=-1) > 0) & (live_total > 0)

    new = (present & (expected == 0)).any(axis=-1, keepdims=True)
    smoothed = np.where(new & present, expected + smoothing, expected)
    # (o - e * L / T)^2 / (e * L / T), rewritten as (o * T - e * L)^2 /
    # (e * L * T): for whole counts the difference is exact in float64, so
    # proportional counts give exactly 0.
    training_total = smoothed.sum(axis=-1, keepdims=True)
    live = live_total[..., None]
    difference = observed * training_total - smoothed * live
    denominator = smoothed * live * training_total
    terms = np.divide(
        np.square(difference),
        denominator,
        out=np.zeros_like(difference),
        where=present & (denominator > 0),
    )

    statistic = terms.sum(axis=-1)
    dof = np.maximum(present.sum(axis=-1) - 1, 1)
    p_value = chi_square_sf(np.where(valid, statistic, np.nan), dof)
    return DriftTestResult(
        statistic=_no_verdict(statistic, valid),
        p_value=_no_verdict(p_value, valid),
    )


def kolmogorov_sf(x: npt.ArrayLike) -> FloatArray:
    """Compute P(K > x) for the Kolmogorov distribution, elementwise.

    K is the limit of ``sqrt(n) * D_n`` for the one-sample KS statistic,
    the distribution of ``scipy.stats.kstwobign``. For ``x >= 1`` this sums
    ``2 * sum_j (-1) ** (j - 1) * exp(-2 * j**2 * x**2)``. Below 1 that
    series converges slowly, so it uses the CDF's theta-function form,
    ``sqrt(2 * pi) / x * sum_j exp(-(2j - 1)**2 * pi**2 / (8 * x**2))``.
    NaN stays NaN.
    """
    values = np.asarray(x, dtype=np.float64)
    large = values >= 1.0
    terms = _KOLMOGOROV_TERMS

    x_large = np.where(large, values, 1.0)[..., None]
    signs = np.where(terms % 2 == 1, 1.0, -1.0)
    series = signs * np.exp(-2.0 * terms**2 * x_large**2)
    upper = 2.0 * series.sum(axis=-1)

    x_small = np.where(large, 1.0, np.maximum(values, _KOLMOGOROV_MIN_X))
    odd = 2.0 * terms - 1.0
    exponent = -(odd**2) * math.pi**2 / (8.0 * x_small[..., None] ** 2)
    cdf = math.sqrt(2.0 * math.pi) / x_small * np.exp(exponent).sum(axis=-1)

    survival = np.where(large, upper, 1.0 - cdf)
    return np.asarray(np.clip(survival, 0.0, 1.0), dtype=np.float64)


def chi_square_sf(statistic: npt.ArrayLike, dof: npt.ArrayLike) -> FloatArray:
    """Compute P(X > statistic) for X chi-square with ``dof`` degrees.

    This is the regularized upper incomplete gamma function
    Q(dof / 2, statistic / 2), by its power series where the statistic is
    below ``dof + 2`` and by its continued fraction elsewhere. It
    matches ``scipy.stats.chi2.sf`` to 1e-10 relative for dof from 1 to
    10,000, the range the tests check. NaN stays NaN.

    Raises:
        ValueError: A ``dof`` is not positive and finite.
    """
    statistics, dofs = np.broadcast_arrays(
        np.asarray(statistic, dtype=np.float64),
        np.asarray(dof, dtype=np.float64),
    )
    if not np.all(np.isfinite(dofs) & (dofs > 0)):
        raise ValueError(
            f"Invalid dof {dofs[~(np.isfinite(dofs) & (dofs > 0))][0]}: "
            "degrees of freedom must be positive and finite"
        )
    pairs = zip(statistics.ravel().tolist(), dofs.ravel().tolist())
    survival = [_gamma_upper(k / 2.0, s / 2.0) for s, k in pairs]
    return np.array(survival, dtype=np.float64).reshape(statistics.shape)


def _gamma_upper(a: float, x: float) -> float:
    """Return the regularized upper incomplete gamma function Q(a, x)."""
    if math.isnan(x):
        return math.nan
    if x <= 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    # log(x**a * exp(-x) / Gamma(a)), shared by both expansions.
    log_prefactor = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        return 1.0 - math.exp(log_prefactor) * _gamma_lower_series(a, x)
    return math.exp(log_prefactor) * _gamma_upper_fraction(a, x)


def _gamma_lower_series(a: float, x: float) -> float:
    # P(a, x) = prefactor * sum_n x**n / (a (a + 1) ... (a + n)). The terms
    # shrink once a + n > x, which is true from n = 1 on for x < a + 1.
    term = 1.0 / a
    total = term
    for n in range(1, _GAMMA_MAX_ITERATIONS):
        term *= x / (a + n)
        total += term
        if abs(term) < abs(total) * _GAMMA_EPSILON:
            return total
    raise ArithmeticError(
        f"Gamma series for a={a}, x={x} failed to converge in "
        f"{_GAMMA_MAX_ITERATIONS} terms"
    )


def _gamma_upper_fraction(a: float, x: float) -> float:
    # Q(a, x) = prefactor / (x + 1 - a - 1 (1 - a) / (x + 3 - a - 2 (2 - a)
    # / (x + 5 - a - ...))), evaluated front to back by the modified Lentz
    # method. The first denominator is positive because x >= a + 1.
    denominator = x + 1.0 - a
    ratio_c = 1.0 / _LENTZ_TINY
    ratio_d = 1.0 / denominator
    value = ratio_d
    for i in range(1, _GAMMA_MAX_ITERATIONS):
        numerator = -i * (i - a)
        denominator += 2.0
        ratio_d = numerator * ratio_d + denominator
        if abs(ratio_d) < _LENTZ_TINY:
            ratio_d = _LENTZ_TINY
        ratio_c = denominator + numerator / ratio_c
        if abs(ratio_c) < _LENTZ_TINY:
            ratio_c = _LENTZ_TINY
        ratio_d = 1.0 / ratio_d
        step = ratio_c * ratio_d
        value *= step
        if abs(step - 1.0) < _GAMMA_EPSILON:
            return value
    raise ArithmeticError(
        f"Gamma continued fraction for a={a}, x={x} failed to converge in "
        f"{_GAMMA_MAX_ITERATIONS} steps"
    )


def _aligned_counts(
    expected_counts: npt.ArrayLike, actual_counts: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    expected = _as_counts("expected_counts", expected_counts)
    actual = _as_counts("actual_counts", actual_counts)
    if expected.shape[-1] != actual.shape[-1]:
        raise ValueError(
            f"expected_counts has {expected.shape[-1]} bins but actual_counts "
            f"has {actual.shape[-1]}: count both into the same baseline bins"
        )
    try:
        lead = np.broadcast_shapes(expected.shape[:-1], actual.shape[:-1])
    except ValueError:
        raise ValueError(
            f"expected_counts of shape {expected.shape} and actual_counts of "
            f"shape {actual.shape} do not broadcast: pass one row per feature"
        ) from None
    shape = (*lead, expected.shape[-1])
    return np.broadcast_to(expected, shape), np.broadcast_to(actual, shape)


def _as_counts(name: str, values: npt.ArrayLike) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0 or array.shape[-1] == 0:
        raise ValueError(
            f"{name} has shape {array.shape}: expected counts per bin along "
            "the last axis, with at least one bin"
        )
    invalid = ~(np.isfinite(array) & (array >= 0))
    if invalid.any():
        raise ValueError(
            f"Invalid {name}: it contains {array[invalid][0]}, but counts "
            "must be finite and >= 0, with missing values in their own bin"
        )
    return array


def _row_count(name: str, value: npt.ArrayLike) -> FloatArray:
    array = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(array) & (array >= 0)):
        raise ValueError(f"Invalid {name}={value!r}: expected a finite row count >= 0")
    return array


def _shares(counts: FloatArray) -> tuple[FloatArray, BoolArray]:
    """Return each bin's share of its row total, and where that total > 0."""
    totals = counts.sum(axis=-1, keepdims=True)
    valid = totals > 0
    shares = counts / np.where(valid, totals, 1.0)
    return shares, valid[..., 0]


def _cdf_at_edges(counts: FloatArray) -> FloatArray:
    """Return the CDF's left limit at each inner edge, 0 for empty rows."""
    totals = counts.sum(axis=-1, keepdims=True)
    # Cumulating counts before dividing keeps integer counts exact, so
    # proportional counts give bit-identical CDFs.
    cumulative = np.cumsum(counts, axis=-1)[..., :-1]
    result: FloatArray = cumulative / np.where(totals > 0, totals, 1.0)
    return result


def _relative_entropy(shares: FloatArray, mixture: FloatArray) -> FloatArray:
    """Return sum(shares * ln(shares / mixture)), taking 0 * ln 0 as 0."""
    ratio = np.divide(shares, mixture, out=np.ones_like(shares), where=shares > 0)
    result: FloatArray = (shares * np.log(ratio)).sum(axis=-1)
    return result


def _bin_knots(
    edges: npt.ArrayLike,
    low: npt.ArrayLike,
    high: npt.ArrayLike,
    count_shape: tuple[int, ...],
) -> FloatArray:
    """Return ``[low, clipped edges..., high]`` per feature, broadcast."""
    inner = np.asarray(edges, dtype=np.float64)
    if inner.ndim == 0 or inner.shape[-1] != count_shape[-1] - 1:
        raise ValueError(
            f"edges has shape {inner.shape} but the counts have "
            f"{count_shape[-1]} bins; pass one edge fewer than bins"
        )
    # Compared pairwise, not by np.diff, because inf - inf warns.
    descending = inner[..., 1:] < inner[..., :-1]
    if np.isnan(inner).any() or descending.any():
        raise ValueError(
            "Invalid edges: expected non-decreasing values without NaN, "
            "such as the baseline's quantile edges"
        )
    start = np.asarray(low, dtype=np.float64)
    stop = np.asarray(high, dtype=np.float64)
    if not np.all(np.isfinite(start) & np.isfinite(stop) & (start <= stop)):
        raise ValueError(
            f"Invalid low={low!r}, high={high!r}: expected finite bounds "
            "with low <= high, such as the min and max of all values"
        )

    lead = np.broadcast_shapes(
        count_shape[:-1], inner.shape[:-1], start.shape, stop.shape
    )
    start = np.broadcast_to(start, lead)[..., None]
    stop = np.broadcast_to(stop, lead)[..., None]
    clipped = np.clip(np.broadcast_to(inner, (*lead, inner.shape[-1])), start, stop)
    return np.concatenate([start, clipped, stop], axis=-1)


def _wasserstein_scale(
    scale: npt.ArrayLike, low: FloatArray, high: FloatArray
) -> FloatArray:
    """Return ``scale``, or ``high - low`` where it is 0, or 1 if both are."""
    divisor = np.asarray(scale, dtype=np.float64)
    if not np.all(np.isfinite(divisor) & (divisor >= 0)):
        raise ValueError(
            f"Invalid scale={scale!r}: expected a finite value >= 0, such "
            "as the baseline's std"
        )
    spread = high - low
    fallback = np.where(spread > 0, spread, 1.0)
    result: FloatArray = np.where(divisor > 0, divisor, fallback)
    return result


def _area_between(widths: FloatArray, difference: FloatArray) -> FloatArray:
    """Integrate |d| per bin, d linear from its value at each bin's edges."""
    left = difference[..., :-1]
    right = difference[..., 1:]
    magnitude = np.abs(left) + np.abs(right)
    same_sign = left * right >= 0
    # Where d changes sign inside the bin, |d| forms two triangles meeting
    # at the zero crossing: width * (left**2 + right**2) / (2 * magnitude).
    crossing = np.divide(
        np.square(left) + np.square(right),
        magnitude,
        out=np.zeros_like(magnitude),
        where=~same_sign,
    )
    result: FloatArray = widths * np.where(same_sign, magnitude, crossing) / 2.0
    return result


def _no_verdict(values: npt.ArrayLike, valid: npt.ArrayLike) -> FloatArray:
    """Return ``values`` as float64, with NaN where ``valid`` is False."""
    return np.asarray(np.where(valid, values, np.nan), dtype=np.float64)
