"""Sample-quality metrics as pure numpy functions (arrays in, floats out).

Inputs are classifier outputs for a set of N clips:

- ``features`` (N, D): penultimate-layer activations (FID, KID, NDB/K);
- ``probs`` (N, C): class posteriors p(y|x), rows summing to 1 (IS, mIS, AM).

Logarithms are natural; probabilities are clipped at ``EPS`` = 1e-12 before a
log so that a posterior with an exact zero gives a large, finite KL. Nothing
here touches a model or a file, except the ``.npz`` helpers at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import WavefastError

EPS = 1e-12


# --- input checks ------------------------------------------------------------------------
def _as_features(features, name: str = "features", min_rows: int = 2) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise WavefastError(f"{name} must be a 2-D array (N, D), got shape {x.shape}")
    if x.shape[0] < min_rows:
        raise WavefastError(f"{name} needs at least {min_rows} rows, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise WavefastError(f"{name} contain NaN or Inf")
    return x


def _as_probs(probs, name: str = "probs") -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 2:
        raise WavefastError(f"{name} must be (N, C) with N >= 1 and C >= 2, got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise WavefastError(f"{name} must be finite and non-negative")
    sums = p.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-3):
        raise WavefastError(f"{name} rows must sum to 1 (softmax outputs); row sums range "
                            f"{sums.min():.4f}..{sums.max():.4f}")
    return p / sums[:, None]


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, EPS, None))


def _kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p_i || q_i) = sum_c p_ic (ln p_ic - ln q_ic) for each row i (q broadcasts)."""
    return np.sum(p * (_log(p) - _log(q)), axis=-1)


def _entropy_rows(p: np.ndarray) -> np.ndarray:
    """H(p_i) = -sum_c p_ic ln p_ic for each row i."""
    return -np.sum(p * _log(p), axis=-1)


# --- FID -----------------------------------------------------------------------------------
def feature_stats(features) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature set.

    features (N, D), N >= 2 -> ``mu`` (D,), ``sigma`` (D, D) with the unbiased
    estimate ``sigma = (X - mu)^T (X - mu) / (N - 1)`` (``np.cov(rowvar=False)``).
    """
    x = _as_features(features)
    mu = x.mean(axis=0)
    sigma = np.atleast_2d(np.cov(x, rowvar=False))
    return mu, sigma


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix by eigendecomposition (negative
    eigenvalues from round-off are clipped to 0)."""
    sym = 0.5 * (matrix + matrix.T)
    values, vectors = np.linalg.eigh(sym)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017)::

        d^2 = ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))

    ``tr((sigma1 sigma2)^(1/2))`` is computed without ``scipy.linalg.sqrtm`` as
    ``sum_k sqrt(lambda_k)`` over the eigenvalues of the symmetric PSD matrix
    ``A = sigma1^(1/2) sigma2 sigma1^(1/2)``, which is similar to ``sigma1 sigma2``
    and so has the same eigenvalues. Both steps use ``eigh`` on symmetric
    matrices, so singular (rank-deficient) covariances need no eps offset and
    no complex parts appear. The result is clipped at 0 against round-off.
    mu (D,), sigma (D, D).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise WavefastError(f"FID statistics do not match: mu {mu1.shape} vs {mu2.shape}, "
                            f"sigma {s1.shape} vs {s2.shape}; they must come from the same feature extractor")
    for name, arr in (("mu1", mu1), ("sigma1", s1), ("mu2", mu2), ("sigma2", s2)):
        if not np.isfinite(arr).all():
            raise WavefastError(f"FID statistic {name} contains NaN or Inf")
    root1 = _psd_sqrt(s1)
    middle = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh(0.5 * (middle + middle.T))
    tr_covmean = float(np.sum(np.sqrt(np.clip(eig, 0.0, None))))
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(value, 0.0)


def fid_from_features(features_a, features_b) -> float:
    """FID between two feature sets (N_a, D) and (N_b, D): ``frechet_distance`` of their
    ``feature_stats``."""
    return frechet_distance(*feature_stats(features_a), *feature_stats(features_b))


# --- KID ---------------------------------------------------------------------------------
def kernel_distance(features_a, features_b) -> float:
    """KID (Binkowski et al. 2018): the unbiased MMD^2 between two feature sets (N_a, D), (N_b, D)
    with the cubic polynomial kernel ``k(x, y) = (x . y / D + 1)^3``::

        KID = sum_{i != j} k(a_i, a_j) / (N_a (N_a - 1)) + sum_{i != j} k(b_i, b_j) / (N_b (N_b - 1))
              - 2 sum_{i, j} k(a_i, b_j) / (N_a N_b)

    Unlike FID it has no small-N bias (its expectation does not depend on N), so it ranks
    samplers more reliably from a few hundred images; it can be slightly negative."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise WavefastError(f"KID needs two (N >= 2, D) feature sets of equal D, got {a.shape} and {b.shape}")
    d = a.shape[1]
    k_aa, k_bb, k_ab = ((x @ y.T / d + 1.0) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    m, n = len(a), len(b)
    return float((k_aa.sum() - np.trace(k_aa)) / (m * (m - 1)) + (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
                 - 2.0 * k_ab.mean())


# --- Inception-score family --------------------------------------------------------------
def _is_value(p: np.ndarray) -> float:
    marginal = p.mean(axis=0, keepdims=True)
    return float(np.exp(np.mean(_kl_rows(p, marginal))))


def inception_score_per_split(probs, splits: int = 10, shuffle_seed: Optional[int] = 0) -> np.ndarray:
    """IS of each of ``splits`` near-equal chunks of ``probs`` (N, C) (Salimans et al. 2016,
    the usual "mean +- std over 10 splits" protocol). Rows are first permuted with
    ``np.random.RandomState(shuffle_seed)`` so that a set sorted by class (a folder per
    digit) does not give one class per split; ``shuffle_seed=None`` keeps the order.
    Returns (splits,)."""
    p = _as_probs(probs)
    if not 1 <= int(splits) <= p.shape[0]:
        raise WavefastError(f"splits must be between 1 and the number of samples ({p.shape[0]}), got {splits}")
    if shuffle_seed is not None:
        p = p[np.random.RandomState(shuffle_seed).permutation(p.shape[0])]
    return np.array([_is_value(chunk) for chunk in np.array_split(p, int(splits))])


def inception_score(probs, splits: int = 1) -> float:
    """Inception score (Salimans et al. 2016)::

        IS = exp( E_x KL(p(y|x) || p(y)) ),   p(y) = E_x p(y|x)

    estimated on ``probs`` (N, C); with ``splits`` > 1 the mean of the per-split IS
    (see ``inception_score_per_split``). Range [1, C]: 1 when all rows are equal,
    C when rows are confident one-hots spread evenly over the C classes.
    """
    return float(np.mean(inception_score_per_split(probs, splits)))


def inception_score_sashimi(probs, seed: int = 0) -> float:
    """Split-half IS as computed by the SaShiMi SC09 evaluation script (Goel et al. 2022,
    state-spaces/s4 ``sashimi/sc09_classifier/test_speech_commands.py``), re-derived here:

    1. permute the N rows with ``np.random.seed(seed); np.random.permutation(N)`` (seed 0 there);
    2. A = first ``N // 2`` rows, B = the remaining rows;
    3. ``IS_sashimi = exp( mean_{x in A} KL(p(y|x) || mean_{x' in B} p(y|x')) )``.

    The marginal comes from the *other* half, so a set of near-identical posteriors
    still scores ~1 while over-confident small sets are not rewarded by
    estimating p(y) on the very samples being scored. Needs N >= 2.
    """
    p = _as_probs(probs)
    if p.shape[0] < 2:
        raise WavefastError("the split-half IS needs at least 2 samples")
    order = np.random.RandomState(seed).permutation(p.shape[0])
    p = p[order]
    half = p.shape[0] // 2
    marginal_b = p[half:].mean(axis=0, keepdims=True)
    return float(np.exp(np.mean(_kl_rows(p[:half], marginal_b))))


def _mean_pairwise_kl(p: np.ndarray) -> float:
    """E_{i,j} KL(p_i || p_j) over all N^2 ordered pairs, in O(N C)::

        (1/N^2) sum_{i,j} sum_c p_ic (ln p_ic - ln p_jc)
          = -mean_i H(p_i) - sum_c pbar_c * mean_j ln p_jc
    """
    logp = _log(p)
    return float(-_entropy_rows(p).mean() - p.mean(axis=0) @ logp.mean(axis=0))


def modified_inception_score(probs, labels=None) -> float:
    """Modified inception score (Gurumurthy et al. 2017, DeLiGAN)::

        mIS = exp( E_{x_i, x_j} KL(p(y|x_i) || p(y|x_j)) )

    with x_i, x_j drawn independently from the set. Without ``labels`` the
    expectation is exact over all N^2 ordered pairs of rows (i = j included, as when
    sampling pairs with replacement); this is the form behind the published SC09
    numbers (DiffWave mIS 59.4; the SaShiMi script estimates it from 10,000 random
    pairs). With ``labels`` (N,) (e.g. the intended class of each generated clip,
    or the argmax of ``probs``) only pairs within the same class count, which is
    Gurumurthy et al.'s within-class diversity: the pooled mean over all
    within-class pairs, i.e. classes weighted by n_c^2.
    """
    p = _as_probs(probs)
    if labels is None:
        return float(np.exp(_mean_pairwise_kl(p)))
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != p.shape[0]:
        raise WavefastError(f"labels has {labels.shape[0]} entries for {p.shape[0]} rows of probs")
    total, pairs = 0.0, 0
    for value in np.unique(labels):
        group = p[labels == value]
        total += _mean_pairwise_kl(group) * group.shape[0] ** 2
        pairs += group.shape[0] ** 2
    return float(np.exp(total / pairs))


def am_score(probs, train_class_probs) -> float:
    """AM score (Zhou et al. 2018, "Activation Maximization Generative Adversarial Nets")::

        AM = KL( p_train(y) || p_gen(y) ) + E_x H( p(y|x) )

    ``p_train(y)`` = ``train_class_probs`` (C,): the classifier's mean posterior over
    the training set (as in the SaShiMi/DiffWave evaluation); ``p_gen(y)`` = the mean
    of ``probs`` (N, C). Lower is better; 0 needs confident predictions whose
    class frequencies match the training set.
    """
    p = _as_probs(probs)
    ref = np.asarray(train_class_probs, dtype=np.float64).reshape(-1)
    if ref.shape[0] != p.shape[1] or (ref < 0).any() or not np.isclose(ref.sum(), 1.0, atol=1e-3):
        raise WavefastError(f"train_class_probs must be a distribution over {p.shape[1]} classes, "
                            f"got shape {ref.shape} summing to {ref.sum():.4f}")
    ref = ref / ref.sum()
    kl = float(_kl_rows(ref[None], p.mean(axis=0, keepdims=True))[0])
    return kl + float(_entropy_rows(p).mean())


# --- NDB/K ---------------------------------------------------------------------------------
def kmeans(features, k: int, seed: int = 0, iterations: int = 100) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding (numpy ``default_rng(seed)``).

    features (N, D) -> centres (k, D). An emptied cluster is re-seeded at the point
    farthest from its centre, so every centre owns at least one training point.
    """
    x = _as_features(features, min_rows=1)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise WavefastError(f"k-means needs 1 <= k <= number of points ({n}), got k={k}")
    rng = np.random.default_rng(seed)
    centres = np.empty((k, x.shape[1]))
    centres[0] = x[rng.integers(n)]
    closest = ((x - centres[0]) ** 2).sum(axis=1)
    for i in range(1, k):
        total = closest.sum()
        index = rng.choice(n, p=closest / total) if total > 0 else rng.integers(n)
        centres[i] = x[index]
        closest = np.minimum(closest, ((x - centres[i]) ** 2).sum(axis=1))
    assign = None
    for _ in range(iterations):
        dist = _sq_distances(x, centres)
        new_assign = dist.argmin(axis=1)
        if assign is not None and np.array_equal(new_assign, assign):
            break
        assign = new_assign
        for c in range(k):
            members = x[assign == c]
            if members.shape[0]:
                centres[c] = members.mean(axis=0)
            else:
                far = int(dist[np.arange(n), assign].argmax())
                centres[c] = x[far]
                assign[far] = c
    return centres


def _sq_distances(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return (x * x).sum(1)[:, None] - 2.0 * x @ centres.T + (centres * centres).sum(1)[None, :]


def ndb_bins(train_features, k: int = 50, seed: int = 0) -> Dict[str, np.ndarray]:
    """The NDB reference: k-means of the training features into ``k`` bins.

    Returns ``{"centres": (k, D), "proportions": (k,), "count": ()}``: the proportion of
    training points whose nearest centre is each bin, and the number of training points.
    """
    x = _as_features(train_features, "train_features")
    centres = kmeans(x, k, seed)
    counts = np.bincount(_sq_distances(x, centres).argmin(axis=1), minlength=k)
    return {"centres": centres, "proportions": counts / x.shape[0], "count": np.array(x.shape[0])}


def ndb_from_bins(centres, train_proportions, train_count: int, features, alpha: float = 0.05) -> float:
    """NDB/K (Richardson & Weiss 2018) of ``features`` (N, D) against precomputed bins.

    Each sample goes to its nearest centre; for every bin k a two-sided two-proportion
    z-test compares the training proportion p1 (n1 = ``train_count``) with the sample
    proportion p2 (n2 = N)::

        p = (n1 p1 + n2 p2) / (n1 + n2),  se = sqrt(p (1 - p) (1/n1 + 1/n2)),
        z = (p1 - p2) / se,  significant if 2 Phi(-|z|) < alpha

    Returns (number of significant bins) / K, in [0, 1]; lower is better. Bins with
    p in {0, 1} (se = 0) count as not significant.
    """
    from scipy.stats import norm

    centres = _as_features(centres, "centres", min_rows=1)
    x = _as_features(features, min_rows=1)
    if x.shape[1] != centres.shape[1]:
        raise WavefastError(f"features have {x.shape[1]} dims but the NDB bins have {centres.shape[1]}")
    if not 0.0 < alpha < 1.0:
        raise WavefastError(f"alpha must be in (0, 1), got {alpha}")
    k = centres.shape[0]
    p1 = np.asarray(train_proportions, dtype=np.float64).reshape(-1)
    if p1.shape[0] != k:
        raise WavefastError(f"{p1.shape[0]} bin proportions for {k} centres")
    n1, n2 = float(train_count), float(x.shape[0])
    p2 = np.bincount(_sq_distances(x, centres).argmin(axis=1), minlength=k) / n2
    pooled = (n1 * p1 + n2 * p2) / (n1 + n2)
    se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (p1 - p2) / np.where(se > 0, se, 1.0), 0.0)
    p_values = 2.0 * norm.cdf(-np.abs(z))
    return float(np.count_nonzero((p_values < alpha) & (se > 0)) / k)


def ndb_score(train_features, features, k: int = 50, alpha: float = 0.05, seed: int = 0) -> float:
    """NDB/K of ``features`` against ``train_features``: ``ndb_bins`` then ``ndb_from_bins``
    (K = 50 and alpha = 0.05 as in the SaShiMi/DiffWave SC09 evaluation)."""
    bins = ndb_bins(train_features, k, seed)
    return ndb_from_bins(bins["centres"], bins["proportions"], int(bins["count"]), features, alpha)


# --- reference statistics files ----------------------------------------------------------
def save_stats(path, **arrays) -> Path:
    """Write named arrays to an ``.npz`` atomically (e.g. ``mu``, ``sigma`` from
    ``feature_stats``, ``train_class_probs``, ``ndb_centres``...)."""
    from ..fileio import atomic_output

    path = Path(path)
    if path.suffix != ".npz":
        raise WavefastError(f"statistics files must end in .npz, got {path.name}")
    with atomic_output(path, ".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **{k: np.asarray(v) for k, v in arrays.items()})
        tmp.chmod(0o644)  # the temporary file is created 0600
    return path


def load_stats(path, required=("mu", "sigma")) -> Dict[str, np.ndarray]:
    """Read an ``.npz`` written by ``save_stats``; refuse pickles and missing keys."""
    path = Path(path)
    if not path.is_file():
        raise WavefastError(f"statistics file not found: {path}")
    try:
        with np.load(str(path), allow_pickle=False) as data:
            stats = {k: data[k] for k in data.files}
    except Exception as exc:
        raise WavefastError(f"cannot read statistics file {path} (expected an .npz from "
                            f"'save_stats'): {exc}") from None
    missing = [k for k in required if k not in stats]
    if missing:
        raise WavefastError(f"statistics file {path} lacks {', '.join(missing)}; it has {', '.join(stats) or 'nothing'}")
    return stats


def save_feature_stats(path, mu, sigma, **extra) -> Path:
    """``save_stats(path, mu=mu, sigma=sigma, **extra)``."""
    return save_stats(path, mu=mu, sigma=sigma, **extra)


def load_feature_stats(path) -> Tuple[np.ndarray, np.ndarray]:
    """``(mu, sigma)`` from an ``.npz`` with keys ``mu`` and ``sigma``."""
    stats = load_stats(path)
    return stats["mu"].astype(np.float64), stats["sigma"].astype(np.float64)


# --- summaries -------------------------------------------------------------------------------
def mean_confidence_interval(values, confidence: float = 0.95) -> Tuple[float, Optional[float]]:
    """Mean and half-width of its two-sided Student-t confidence interval::

        mean +- t_{(1+confidence)/2, n-1} * s / sqrt(n),   s = sample std (ddof 1)

    values (n,) -> ``(mean, half_width)``; the half-width is ``None`` when n < 2.
    """
    from scipy.stats import t

    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise WavefastError("cannot average an empty list of scores")
    if not 0.0 < confidence < 1.0:
        raise WavefastError(f"confidence must be in (0, 1), got {confidence}")
    mean = float(x.mean())
    if x.size < 2:
        return mean, None
    return mean, float(t.ppf(0.5 + confidence / 2.0, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))


def half_sample_interval(statistic, n: int, resamples: int = 200, confidence: float = 0.95,
                         seed: int = 0) -> Tuple[float, float]:
    """Normal interval ``theta +- z sd`` of a set statistic by half-sampling (McCarthy 1969).

    ``theta = statistic(arange(n))``; ``sd`` is the standard deviation of ``statistic(index)`` over
    ``resamples`` random halves (``n // 2`` items drawn *without* replacement; numpy seed ``seed``);
    ``z`` the normal quantile for ``confidence``. For a mean, the variance over halves equals the
    full set's sampling variance ``sigma^2 / n`` exactly, which is why halves are used; unlike the
    with-replacement bootstrap, no item is duplicated, so set statistics that duplicates distort
    (FID: the covariance shrinks; IS: the marginal loses entropy) are not shifted. The interval
    is the spread of the statistic *at this n*; FID's upward bias at small n is not removed.
    """
    from scipy.stats import norm

    if n < 4 or resamples < 2:
        raise WavefastError(f"half-sampling needs n >= 4 items and >= 2 resamples, got {n}, {resamples}")
    if not 0.0 < confidence < 1.0:
        raise WavefastError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    theta = float(statistic(np.arange(n)))
    values = np.array([statistic(rng.permutation(n)[: n // 2]) for _ in range(int(resamples))], dtype=np.float64)
    half_width = float(norm.ppf(0.5 + confidence / 2.0) * values.std(ddof=1))
    return theta - half_width, theta + half_width


def fid_with_interval(features, reference: Dict[str, np.ndarray], baseline=None, resamples: int = 100,
                      confidence: float = 0.95) -> Dict[str, float]:
    """FID of ``features`` (N, D) against ``reference`` (``mu``, ``sigma``) with its half-sampling
    interval (:func:`half_sample_interval`): ``{fid, fid_lo, fid_hi}``; with ``baseline`` (N, D),
    the features of another sampler on the *same* seeds, also the paired change
    ``{delta, delta_lo, delta_hi}`` = FID(features) - FID(baseline), both measured on the same
    random halves, so the seeds' shared luck cancels and the interval is that of the difference."""
    features = _as_features(features, min_rows=4)
    n = len(features)
    mu, sigma = reference["mu"], reference["sigma"]
    fid_of = lambda f, idx: frechet_distance(*feature_stats(f[idx]), mu, sigma)  # noqa: E731
    lo, hi = half_sample_interval(lambda idx: fid_of(features, idx), n, resamples, confidence)
    out = {"fid": fid_of(features, np.arange(n)), "fid_lo": lo, "fid_hi": hi}
    if baseline is not None:
        baseline = _as_features(baseline, "baseline", min_rows=4)
        if baseline.shape != features.shape:
            raise WavefastError(f"a paired FID change needs features of the same seeds: got {features.shape} "
                                f"and {baseline.shape}")
        delta = lambda idx: fid_of(features, idx) - fid_of(baseline, idx)  # noqa: E731
        out["delta"] = delta(np.arange(n))
        out["delta_lo"], out["delta_hi"] = half_sample_interval(delta, n, resamples, confidence)
    return out


def sc09_metrics(probs, features, reference: Dict[str, np.ndarray]) -> Dict[str, object]:
    """Every SC09 score of one generated set against reference statistics.

    probs (N, C), features (N, D); ``reference`` needs ``mu``, ``sigma`` and may hold
    ``train_class_probs`` (for AM) and ``ndb_centres``/``ndb_proportions``/``ndb_count``
    (for NDB/K). Missing pieces give ``None``. IS over 10 splits needs N >= 10.
    """
    p = _as_probs(probs)
    x = _as_features(features)
    out: Dict[str, object] = {"n": int(p.shape[0])}
    out["fid"] = frechet_distance(*feature_stats(x), reference["mu"], reference["sigma"])
    out["is"] = inception_score(p)
    if p.shape[0] >= 10:
        per_split = inception_score_per_split(p, 10)
        out["is_10split_mean"], out["is_10split_std"] = float(per_split.mean()), float(per_split.std())
    else:
        out["is_10split_mean"] = out["is_10split_std"] = None
    out["is_sashimi"] = inception_score_sashimi(p)
    out["mis"] = modified_inception_score(p)
    out["am"] = am_score(p, reference["train_class_probs"]) if "train_class_probs" in reference else None
    if all(k in reference for k in ("ndb_centres", "ndb_proportions", "ndb_count")):
        out["ndb_k"] = ndb_from_bins(reference["ndb_centres"], reference["ndb_proportions"],
                                     int(reference["ndb_count"]), x)
    else:
        out["ndb_k"] = None
    out["class_histogram"] = np.bincount(p.argmax(axis=1), minlength=p.shape[1]).tolist()
    return out
