"""The fair-rate policy, pure (providers/reference/policy.py)."""

from decimal import Decimal

import pytest

from providers.reference import policy as p
from providers.reference.config import Policy
from providers.reference.store import Quote

NOW = 1_800_000_000_000
POLICY = Policy(
    max_age_ms=10_000,
    fallback_max_age_ms=120_000,
    fallback_enabled=True,
    conflict_bps=Decimal("100"),
    basis_tolerance_bps=Decimal("50"),
)


def quote(source, price, age_ms, pair="BTC/EUR"):
    return Quote(source=source, pair=pair, price=Decimal(price), observed_ms=NOW - age_ms, received_ms=NOW, via="x")


def legs(kraken=None, gecko=None, *, kraken_paused=False, gecko_paused=False, policy=POLICY):
    k = p.leg("kraken", kraken, paused=kraken_paused, configured=True, max_age_ms=policy.max_age_ms, now_ms=NOW)
    g = p.leg(
        "coingecko", gecko, paused=gecko_paused, configured=True, max_age_ms=policy.fallback_max_age_ms, now_ms=NOW
    )
    return {"kraken": k, "coingecko": g}


def evaluate(policy=POLICY, basis=None, **kw):
    return p.evaluate(pair="BTC/EUR", policy=policy, now_ms=NOW, basis=basis, **legs(policy=policy, **kw))


def test_kraken_is_primary_and_coingecko_cross_checks_it():
    ev = evaluate(kraken=quote("kraken", "60000", 500), gecko=quote("coingecko", "60030", 30_000))
    assert (ev.outcome, ev.source, ev.rate, ev.cross_check) == ("ok", "kraken", Decimal("60000"), "agrees")
    assert ev.divergence_bps == Decimal("5.0000") and ev.usable and not ev.fallback
    assert ev.inverse == p.quantize(Decimal(1) / Decimal(60000))
    assert ev.age_ms == 500


def test_kraken_alone_is_used_and_says_it_was_not_cross_checked():
    ev = evaluate(kraken=quote("kraken", "60000", 500), gecko=quote("coingecko", "60030", 130_000))
    assert (ev.outcome, ev.source, ev.cross_check) == ("ok", "kraken", "unavailable")
    assert "not cross-checked: coingecko stale (130.0 s > 120 s)" in ev.reason


def test_stale_kraken_falls_back_to_coingecko_and_says_so():
    ev = evaluate(kraken=quote("kraken", "59000", 10_001), gecko=quote("coingecko", "60030", 30_000))
    assert (ev.outcome, ev.source, ev.rate, ev.fallback) == ("fallback", "coingecko", Decimal("60030"), True)
    assert ev.reason == "fallback: coingecko (kraken stale (10.0 s > 10 s))"
    assert ev.age_ms == 30_000


def test_fallback_disabled_makes_a_stale_kraken_unhealthy():
    policy = Policy(**{**POLICY.__dict__, "fallback_enabled": False})
    ev = evaluate(policy=policy, kraken=None, gecko=quote("coingecko", "60030", 1_000))
    assert (ev.outcome, ev.rate, ev.usable) == ("unhealthy", None, False)
    assert "fallback to coingecko is disabled" in ev.reason


def test_both_stale_is_unhealthy_without_a_rate():
    ev = evaluate(kraken=quote("kraken", "60000", 20_000), gecko=quote("coingecko", "60000", 200_000))
    assert (ev.outcome, ev.rate, ev.inverse, ev.source, ev.usable) == ("unhealthy", None, None, "", False)
    assert ev.reason == "kraken stale (20.0 s > 10 s); coingecko stale (200.0 s > 120 s)"


def test_sources_apart_beyond_the_tolerance_conflict():
    ev = evaluate(kraken=quote("kraken", "60000", 100), gecko=quote("coingecko", "60700", 100))
    assert (ev.outcome, ev.rate, ev.cross_check, ev.usable) == ("conflicted", None, "conflict", False)
    assert ev.divergence_bps == Decimal("116.6667")
    assert "116.6667 bps apart (> 100)" in ev.reason


def test_exactly_at_the_tolerance_is_not_a_conflict():
    ev = evaluate(kraken=quote("kraken", "60000", 100), gecko=quote("coingecko", "60600", 100))
    assert ev.outcome == "ok" and ev.divergence_bps == Decimal("100.0000")


@pytest.mark.parametrize("paused", ["kraken", "coingecko"])
def test_a_paused_source_is_not_used(paused):
    ev = evaluate(
        kraken=quote("kraken", "60000", 100),
        gecko=quote("coingecko", "60700", 100),
        kraken_paused=paused == "kraken",
        gecko_paused=paused == "coingecko",
    )
    assert ev.outcome == ("fallback" if paused == "kraken" else "ok")
    assert getattr(ev, paused).status == "paused"


def test_a_cross_goes_through_its_basis_and_records_it():
    basis = p.Basis(factor=Decimal("0.5"), rows=({"asset": "EURE", "rate": "2"},))
    ev = evaluate(basis=basis, kraken=quote("kraken", "60000", 100), gecko=None)
    assert ev.rate == Decimal("30000") and ev.basis is basis


def test_a_basis_its_sanity_source_disagrees_with_conflicts_the_cross():
    observed = quote("coingecko", "0.98", 1000, pair="EURE/EUR")
    check = p.basis_check(rate=Decimal(1), observed=observed, policy=POLICY, now_ms=NOW)
    assert check["status"] == "conflict" and check["deviation_bps"] == "200.0000"
    basis = p.Basis(factor=Decimal(1), rows=({"asset": "EURE"},), check=check)
    ev = evaluate(basis=basis, kraken=quote("kraken", "60000", 100), gecko=None)
    assert ev.outcome == "conflicted" and ev.rate is None and "basis check failed" in ev.reason


def test_a_stale_sanity_price_leaves_the_basis_unchecked_not_refused():
    observed = quote("coingecko", "0.90", 500_000, pair="EURE/EUR")
    check = p.basis_check(rate=Decimal(1), observed=observed, policy=POLICY, now_ms=NOW)
    assert check["status"] == "unavailable"
    ev = evaluate(basis=p.Basis(Decimal(1), (), check), kraken=quote("kraken", "60000", 100), gecko=None)
    assert ev.outcome == "ok"
