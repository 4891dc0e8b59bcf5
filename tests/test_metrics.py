

def test_fid_with_interval_brackets_the_fid_and_pairs_the_change():
    import numpy as np
    import pytest

    from wavefast.errors import WavefastError
    from wavefast.eval.metrics import feature_stats, fid_with_interval, frechet_distance

    rng = np.random.default_rng(0)
    reference = dict(zip(("mu", "sigma"), feature_stats(rng.standard_normal((4000, 4)))))
    a = rng.standard_normal((400, 4)) + 0.3
    out = fid_with_interval(a, reference, resamples=50)
    assert out["fid"] == frechet_distance(*feature_stats(a), reference["mu"], reference["sigma"])
    assert out["fid_lo"] < out["fid"] < out["fid_hi"]
    # the same features shifted a little more: the paired change is positive and its interval is far
    # narrower than either FID's, since both are measured on the same halves
    b = a + 0.1
    paired = fid_with_interval(b, reference, baseline=a, resamples=50)
    assert paired["delta"] == pytest.approx(paired["fid"] - out["fid"])
    assert 0 < paired["delta_lo"] < paired["delta"] < paired["delta_hi"]
    assert paired["delta_hi"] - paired["delta_lo"] < 0.5 * (out["fid_hi"] - out["fid_lo"])
    with pytest.raises(WavefastError, match="same seeds"):
        fid_with_interval(b, reference, baseline=a[:100])
