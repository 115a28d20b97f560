"""λ(q): buckets, the zero-shot map and the trained (preference) estimator."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")

from engine.dami.lam import BUCKETS, PrefEstimator, ZeroShotLambda, preference_pairs, snap, uncertainty  # noqa: E402


def test_snap_goes_to_the_nearest_bucket_ties_up():
    assert snap(0.1) == 0.0 and snap(0.13) == 0.25 and snap(0.56) == 0.5 and snap(0.57) == 0.625
    assert snap(0.125) == 0.25  # a tie takes the larger λ
    assert snap(0.7, (0.0, 1.0)) == 1.0
    assert set(snap(x / 100) for x in range(101)) == set(BUCKETS)


def test_zero_shot_lambda_is_monotone_in_uncertainty_and_snapped():
    z = ZeroShotLambda(0.1, 0.7)
    us = [i / 200 for i in range(201)]
    lams = [z(u) for u in us]
    assert all(a <= b for a, b in zip(lams, lams[1:], strict=False))
    assert set(lams) == set(BUCKETS) and lams[0] == 0.0 and lams[-1] == 1.0
    # uncertainty grows as confidence falls and as the discrepancy grows
    assert uncertainty(0.9, 0.0) < uncertainty(0.6, 0.0) < uncertainty(0.6, 0.5)
    assert uncertainty(1.0, 0.0) == 0.0


def test_calibration_spreads_lambda_over_the_quantiles():
    rng = random.Random(0)
    us = [rng.random() ** 3 for _ in range(500)]
    z = ZeroShotLambda.calibrate(us, lo_q=0.2, hi_q=0.9)
    n = len(us)
    assert abs(sum(u <= z.u_lo for u in us) / n - 0.2) < 0.01 and abs(sum(u >= z.u_hi for u in us) / n - 0.1) < 0.01
    assert all(z(u) == 0.0 for u in us if u <= z.u_lo) and all(z(u) == 1.0 for u in us if u >= z.u_hi)
    assert len({z(u) for u in us}) == len(BUCKETS)


def test_preferences_put_accuracy_first_then_tokens():
    acc = {0.0: 0.5, 0.5: 1.0, 1.0: 1.0}
    tok = {0.0: 5, 0.5: 40, 1.0: 50}
    pairs = set(preference_pairs(acc, tok))
    assert (0.5, 0.0) in pairs and (1.0, 0.0) in pairs  # accuracy beats brevity
    assert (0.5, 1.0) in pairs and (1.0, 0.5) not in pairs  # equal accuracy: fewer tokens wins


def _planted(n, dim, seed, shuffle=False):
    """Queries whose cheapest fully-accurate λ is a step function of the first feature."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, dim, generator=g)
    star = [BUCKETS[min(len(BUCKETS) - 1, int((x + 2.0) / 4.0 * len(BUCKETS)))] if -2 < x < 2 else
            (BUCKETS[0] if x <= -2 else BUCKETS[-1]) for x in h[:, 0].tolist()]
    accs = [{b: float(b >= s) for b in BUCKETS} for s in star]
    toks = [{b: 10 + 100 * b for b in BUCKETS} for _ in star]
    if shuffle:
        perm = torch.randperm(n, generator=g)
        h = h[perm]
    return h, accs, toks, star


def test_trained_estimator_recovers_a_planted_rule_and_not_a_shuffled_one():
    h, accs, toks, _ = _planted(400, 8, 0)
    est = PrefEstimator(8, BUCKETS, hidden=32)
    est.fit(h, accs, toks, epochs=300)
    ht, _, _, star_t = _planted(300, 8, 1)
    pred = est.predict(ht)
    hit = sum(abs(p - s) < 1e-9 for p, s in zip(pred, star_t, strict=True)) / len(star_t)
    assert hit > 0.8, hit
    # negative control: the same training with features shuffled against the labels learns no rule
    hs, accs_s, toks_s, _ = _planted(400, 8, 0, shuffle=True)
    ctl = PrefEstimator(8, BUCKETS, hidden=32)
    ctl.fit(hs, accs_s, toks_s, epochs=300)
    hit_ctl = sum(abs(p - s) < 1e-9 for p, s in zip(ctl.predict(ht), star_t, strict=True)) / len(star_t)
    assert hit_ctl < 0.5, hit_ctl


def test_trained_estimator_round_trips_through_a_file(tmp_path):
    h, accs, toks, _ = _planted(100, 4, 2)
    est = PrefEstimator(4, BUCKETS, hidden=16)
    est.fit(h, accs, toks, epochs=50)
    est.save(tmp_path / "est.pt")
    again = PrefEstimator.load(tmp_path / "est.pt")
    assert again.predict(h) == est.predict(h)


def test_accuracy_weight_thinks_for_a_kind_of_query_that_sometimes_fails():
    """A quarter of the "risky" queries (feature 0 > 0), which ones unpredictable, fail unless λ ≥ 0.5;
    "safe" ones never fail. Unweighted, the majority (answer directly) wins for risky queries; with
    accuracy pairs weighted 10×, the risky kind thinks and the safe kind still does not."""
    g = torch.Generator().manual_seed(3)
    h = torch.randn(400, 4, generator=g)
    risky = (h[:, 0] > 0).tolist()
    fails = (torch.rand(400, generator=g) < 0.25).tolist()
    accs = [{b: float(b >= 0.5 or not (r and f)) for b in BUCKETS} for r, f in zip(risky, fails, strict=True)]
    toks = [{b: 10 + 100 * b for b in BUCKETS} for _ in risky]

    def thinking_share(acc_weight):
        est = PrefEstimator(4, BUCKETS, hidden=16)
        est.fit(h, accs, toks, epochs=200, acc_weight=acc_weight)
        ht = torch.randn(200, 4, generator=torch.Generator().manual_seed(4))
        pred = est.predict(ht)
        kind = (ht[:, 0] > 0).tolist()
        share = [sum(p >= 0.5 for p, k in zip(pred, kind, strict=True) if k == want) / max(1, kind.count(want))
                 for want in (True, False)]
        return share  # [risky, safe]

    risky_w, safe_w = thinking_share(10.0)
    assert risky_w > 0.8 and safe_w < 0.2, (risky_w, safe_w)
    # control: unweighted, most risky queries answer directly. The MLP memorises some single failures,
    # so a few near them think (0.26 measured; the threshold first written, 0.2, was too strict)
    risky_1, _ = thinking_share(1.0)
    assert risky_1 < 0.5, risky_1
