"""Known-value tests of the pure metric functions in wavefast.eval.metrics."""

import numpy as np
import pytest

from wavefast.errors import WavefastError
from wavefast.eval import metrics as M


def _gaussian(n, d, seed, shift=0.0):
    return np.random.default_rng(seed).standard_normal((n, d)) + shift


def _onehots(labels, c=10, confidence=1.0):
    p = np.full((len(labels), c), (1.0 - confidence) / (c - 1))
    p[np.arange(len(labels)), labels] = confidence
    return p


# --- FID -----------------------------------------------------------------------------------
def test_fid_of_a_set_with_itself_is_zero():
    x = _gaussian(500, 16, 0)
    assert M.fid_from_features(x, x) == pytest.approx(0.0, abs=1e-8)


def test_fid_of_two_halves_is_small_and_shifts_are_large():
    x = _gaussian(4000, 8, 1)
    halves = M.fid_from_features(x[:2000], x[2000:])
    assert halves < 0.1
    shifted = M.fid_from_features(x[:2000], x[2000:] + 1.0)  # mean moves by 1 in 8 dims -> ~8
    assert shifted == pytest.approx(8.0 + halves, abs=0.3)
    noise = M.fid_from_features(x[:2000], 3.0 * x[2000:])  # sigma 1 -> 9: 8 * (1 + 9 - 2*3) = 32
    assert noise == pytest.approx(32.0, rel=0.1)


def test_frechet_distance_matches_closed_form():
    rng = np.random.default_rng(2)
    d = 6
    a, b = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    s1, s2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    from scipy.linalg import sqrtm

    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.real(sqrtm(s1 @ s2)))
    assert M.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    # diagonal case: sum (sqrt(s1_i) - sqrt(s2_i))^2
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    assert M.frechet_distance(np.zeros(3), np.diag(v1), np.ones(3), np.diag(v2)) == pytest.approx(3.0 + 1.0 + 0 + 4.0)


def test_frechet_distance_handles_singular_covariances():
    x = _gaussian(5, 32, 3)  # N < D: rank-deficient covariance
    value = M.fid_from_features(x, x)
    assert np.isfinite(value) and value == pytest.approx(0.0, abs=1e-6)


def test_feature_stats_roundtrip(tmp_path):
    mu, sigma = M.feature_stats(_gaussian(100, 4, 4))
    assert mu.shape == (4,) and sigma.shape == (4, 4)
    path = M.save_feature_stats(tmp_path / "ref.npz", mu, sigma, extra=np.arange(3))
    mu2, sigma2 = M.load_feature_stats(path)
    np.testing.assert_array_equal(mu, mu2)
    np.testing.assert_array_equal(sigma, sigma2)
    assert M.load_stats(path)["extra"].tolist() == [0, 1, 2]
    np.savez(tmp_path / "bad.npz", mu=mu)
    with pytest.raises(WavefastError, match="lacks sigma"):
        M.load_feature_stats(tmp_path / "bad.npz")


def test_fid_rejects_mismatched_dims():
    with pytest.raises(WavefastError, match="do not match"):
        M.fid_from_features(_gaussian(10, 3, 0), _gaussian(10, 4, 0))


# --- IS family -----------------------------------------------------------------------------
def test_is_of_uniform_confident_predictions_is_the_class_count():
    probs = _onehots(np.arange(1000) % 10)
    assert M.inception_score(probs) == pytest.approx(10.0, rel=1e-6)
    assert 9.0 < M.inception_score(probs, splits=10) <= 10.0  # shuffled splits of 100 are not exactly balanced
    assert M.inception_score_per_split(probs, 10, shuffle_seed=None) == pytest.approx(np.full(10, 10.0))
    assert M.inception_score_sashimi(probs) == pytest.approx(10.0, rel=0.05)


def test_is_of_identical_predictions_is_one():
    probs = np.tile(np.linspace(1, 2, 10) / np.linspace(1, 2, 10).sum(), (50, 1))
    assert M.inception_score(probs) == pytest.approx(1.0)
    assert M.inception_score_sashimi(probs) == pytest.approx(1.0)
    assert M.modified_inception_score(probs) == pytest.approx(1.0)


def test_is_of_mode_collapse_counts_modes():
    probs = _onehots(np.arange(600) % 3)
    assert M.inception_score(probs) == pytest.approx(3.0, rel=1e-6)
    per_split = M.inception_score_per_split(probs, 6, shuffle_seed=None)
    assert per_split.shape == (6,) and np.allclose(per_split, 3.0, rtol=1e-3)  # chunks hold 34/33/33
    by_class = _onehots(np.repeat(np.arange(10), 100))  # sorted by class, as files in digit folders
    assert M.inception_score_per_split(by_class, 10, shuffle_seed=None) == pytest.approx(np.ones(10))
    assert M.inception_score_per_split(by_class, 10).mean() > 9


def test_sashimi_is_is_deterministic_and_uses_the_other_half():
    probs = np.random.default_rng(0).dirichlet(np.ones(10) * 0.3, size=200)
    assert M.inception_score_sashimi(probs) == M.inception_score_sashimi(probs)
    order = np.random.RandomState(0).permutation(200)
    a, b = probs[order[:100]], probs[order[100:]]
    expected = np.exp(np.mean(np.sum(a * (np.log(a) - np.log(b.mean(0))), axis=1)))
    assert M.inception_score_sashimi(probs) == pytest.approx(expected, rel=1e-9)


def test_modified_is_matches_brute_force_and_within_class():
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(4), size=30)
    kl = lambda p, q: np.sum(p * (np.log(p) - np.log(q)))
    brute = np.exp(np.mean([kl(p, q) for p in probs for q in probs]))
    assert M.modified_inception_score(probs) == pytest.approx(brute, rel=1e-9)
    labels = probs.argmax(1)
    pairs = [kl(p, q) for c in np.unique(labels) for p in probs[labels == c] for q in probs[labels == c]]
    assert M.modified_inception_score(probs, labels) == pytest.approx(np.exp(np.mean(pairs)), rel=1e-9)
    # confident one-hots: across classes huge, within a class exactly 1
    hots = _onehots(np.arange(100) % 10, confidence=0.99)
    assert M.modified_inception_score(hots) > 20
    assert M.modified_inception_score(hots, np.arange(100) % 10) == pytest.approx(1.0)


def test_am_score():
    uniform = np.full(10, 0.1)
    confident_balanced = _onehots(np.arange(100) % 10)
    assert M.am_score(confident_balanced, uniform) == pytest.approx(0.0, abs=1e-9)
    collapsed = _onehots(np.zeros(100, dtype=int))
    assert M.am_score(collapsed, uniform) > 10  # KL(uniform || one-hot) is large
    unsure = np.tile(uniform, (100, 1))
    assert M.am_score(unsure, uniform) == pytest.approx(np.log(10))
    with pytest.raises(WavefastError, match="distribution over 10 classes"):
        M.am_score(unsure, np.ones(5) / 5)


def test_probs_are_validated():
    with pytest.raises(WavefastError, match="sum to 1"):
        M.inception_score(np.ones((4, 10)))
    with pytest.raises(WavefastError, match=r"\(N, C\)"):
        M.inception_score(np.ones(10) / 10)


# --- NDB/K ---------------------------------------------------------------------------------
def test_ndb_small_for_same_distribution_large_for_shifted():
    train = _gaussian(2000, 4, 6)
    same = _gaussian(1000, 4, 7)
    shifted = _gaussian(1000, 4, 8, shift=1.0)
    assert M.ndb_score(train, same, k=20) <= 0.2
    assert M.ndb_score(train, shifted, k=20) >= 0.6


def test_ndb_bins_are_reusable():
    train = _gaussian(500, 3, 9)
    bins = M.ndb_bins(train, k=10)
    assert bins["centres"].shape == (10, 3)
    assert bins["proportions"].sum() == pytest.approx(1.0) and (bins["proportions"] > 0).all()
    assert M.ndb_from_bins(bins["centres"], bins["proportions"], 500, train) == 0.0


def test_mean_confidence_interval():
    mean, half = M.mean_confidence_interval([1.0, 2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.5)
    assert half == pytest.approx(3.182446 * np.std([1, 2, 3, 4], ddof=1) / 2, rel=1e-5)  # t_{0.975, 3}
    assert M.mean_confidence_interval([3.0]) == (3.0, None)


def test_sc09_metrics_report():
    rng = np.random.default_rng(10)
    labels = np.arange(200) % 10
    features = rng.standard_normal((200, 8)) + labels[:, None]
    ref = {"mu": features.mean(0), "sigma": np.cov(features, rowvar=False), "train_class_probs": np.full(10, 0.1)}
    ref.update({f"ndb_{k}": v for k, v in M.ndb_bins(features, 10).items()})
    out = M.sc09_metrics(_onehots(labels, confidence=0.91), features, ref)
    assert out["fid"] == pytest.approx(0.0, abs=1e-8) and out["ndb_k"] == 0.0
    assert out["class_histogram"] == [20] * 10
    assert out["is"] == pytest.approx(np.exp(np.log(10) + 0.91 * np.log(0.91) + 0.09 * np.log(0.01)))
    assert out["am"] > 0
