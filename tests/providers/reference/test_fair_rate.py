"""Fair rates the desk uses, and the samples they point to (providers/reference/service.py)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from providers.models import ReferenceBasis, ReferenceSample
from providers.reference.service import (
    ReferenceUnavailable,
    ReferenceUnknownPair,
    reference_rate_use,
    sample_at,
    samples_purge,
    samples_update,
)
from providers.reference.store import Quote, now_ms, quotes_put


@pytest.fixture
def prices(reference):
    """`prices(kraken=..., coingecko=..., pair=..., kraken_age=..., gecko_age=...)` puts quotes in the store."""

    def put(kraken=None, coingecko=None, *, pair="BTC/EUR", kraken_age=0, gecko_age=0):
        now = now_ms()
        quotes = []
        if kraken is not None:
            quotes.append(
                Quote("kraken", pair, Decimal(kraken), now - kraken_age, now, "ws", Decimal(kraken), Decimal(kraken))
            )
        if coingecko is not None:
            quotes.append(Quote("coingecko", pair, Decimal(coingecko), now - gecko_age, now, "poll"))
        quotes_put(quotes)

    return put


def test_a_used_rate_points_to_a_sample_holding_the_source_prices_ages_outcome(prices):
    prices(kraken="60000", coingecko="60010", kraken_age=300, gecko_age=20_000)
    used = reference_rate_use("BTC/EUR", purpose="decision")
    sample = ReferenceSample.objects.get(pk=used.sample_id)
    assert (used.rate, used.outcome, used.source, used.fallback) == (Decimal("60000"), "ok", "kraken", "")
    assert sample.rate == used.rate and sample.inverse == used.inverse
    assert (sample.kraken_price, sample.kraken_status, sample.coingecko_price) == (60000, "fresh", 60010)
    assert 300 <= sample.kraken_age_ms < 1300 and 20_000 <= sample.coingecko_age_ms < 21_000
    assert sample.cross_check == "agrees" and sample.divergence_bps == Decimal("1.6667")
    assert sample.pinned_for == "decision" and sample.pinned_at is not None
    # "what price existed at decision time?": one row
    assert sample_at("BTC/EUR", timezone.now()) == sample


def test_the_last_sample_stands_while_the_rate_moves_less_than_the_sample_bps(prices, settings):
    settings.REFERENCE_SAMPLE_BPS = 5
    prices(kraken="60000")
    first = reference_rate_use("BTC/EUR", purpose="risk_check")
    prices(kraken="60020")  # 3.3 bps
    second = reference_rate_use("BTC/EUR", purpose="risk_check")
    assert second.sample_id == first.sample_id and second.rate == Decimal("60000")
    prices(kraken="60040")  # 6.7 bps from the sample
    third = reference_rate_use("BTC/EUR", purpose="risk_check")
    assert third.sample_id != first.sample_id and third.rate == Decimal("60040")
    assert ReferenceSample.objects.count() == 2


def test_a_sample_older_than_the_sample_seconds_is_not_reused(prices, settings):
    prices(kraken="60000")
    first = reference_rate_use("BTC/EUR", purpose="mark")
    ReferenceSample.objects.filter(pk=first.sample_id).update(
        taken_at=timezone.now() - timedelta(seconds=settings.REFERENCE_SAMPLE_SECONDS + 1)
    )
    assert reference_rate_use("BTC/EUR", purpose="mark").sample_id != first.sample_id
    assert ReferenceSample.objects.get(pk=first.sample_id).pinned_at is None  # marks do not pin


def test_both_directions_from_one_sample(prices):
    prices(kraken="50000")
    forward = reference_rate_use("BTC/EUR", purpose="decision")
    backward = reference_rate_use("eur-btc", purpose="decision")
    assert backward.pair == "EUR/BTC" and backward.sample_id == forward.sample_id
    assert backward.rate == Decimal("0.00002") and backward.inverse == Decimal("50000")


def test_conflicting_sources_are_refused_with_the_reason_and_the_sample(prices):
    """Seed 004: sources conflict beyond tolerance -> conflicted; a consumer is refused."""
    prices(kraken="60000", coingecko="61000")
    with pytest.raises(ReferenceUnavailable) as refused:
        reference_rate_use("BTC/EUR", purpose="decision")
    error = refused.value
    assert (error.code, error.status_code) == ("REFERENCE_CONFLICTED", 503)
    assert error.details["outcome"] == "conflicted" and "166.6667 bps apart" in error.details["reason"]
    sample = ReferenceSample.objects.get(pk=error.details["sample_id"])
    assert sample.outcome == "conflicted" and sample.rate is None and sample.pinned_for == "decision"


def test_an_unknown_pair_is_refused():
    with pytest.raises(ReferenceUnknownPair) as refused:
        reference_rate_use("DOGE/EUR", purpose="decision")
    assert refused.value.code == "REFERENCE_UNKNOWN_PAIR" and refused.value.status_code == 404


@pytest.mark.django_db
def test_an_unknown_pair_is_refused_before_anything_is_read(settings):
    settings.REFERENCE_PAIRS = ["BTC/EUR"]
    with pytest.raises(ReferenceUnknownPair):
        reference_rate_use("not a pair", purpose="decision")


def test_a_cross_records_the_basis_it_went_through_and_a_basis_change_makes_a_new_sample(prices, operator_user):
    from trading.services.reference import reference_basis_set

    prices(kraken="60000")
    first = reference_rate_use("BTC/EURE", purpose="decision")
    assert first.rate == Decimal("60000")
    sample = ReferenceSample.objects.get(pk=first.sample_id)
    assert sample.underlying == "BTC/EUR" and sample.basis["factor"] == "1"
    row = sample.basis["rows"][0]
    assert (row["asset"], row["equals"], row["rate"], row["source"], row["set_by"]) == (
        "EURE",
        "EUR",
        "1",
        "assumed peg",
        "test",
    )

    reference_basis_set(actor=operator_user, asset="EURE", equals="EUR", rate="0.998", source="desk estimate")
    second = reference_rate_use("BTC/EURE", purpose="decision")
    assert second.sample_id != first.sample_id
    assert second.rate == (Decimal("60000") / Decimal("0.998")).quantize(Decimal("1e-18"))
    basis = ReferenceSample.objects.get(pk=second.sample_id).basis["rows"][0]
    assert basis["rate"] == "0.998" and basis["source"] == "desk estimate" and basis["set_by"].startswith("user:")


def test_a_basis_sanity_source_that_disagrees_makes_the_cross_conflicted(prices):
    ReferenceBasis.objects.filter(asset="EURE").update(sanity_coingecko_id="monerium-eur-money")
    prices(kraken="60000")
    prices(coingecko="0.97", pair="EURE/EUR")
    with pytest.raises(ReferenceUnavailable) as refused:
        reference_rate_use("BTC/EURE", purpose="decision")
    assert refused.value.code == "REFERENCE_CONFLICTED" and "basis check failed" in refused.value.message
    assert reference_rate_use("BTC/EUR", purpose="decision").rate == Decimal("60000")  # the direct pair is fine


def test_a_cross_without_its_underlying_pair_is_unhealthy(prices, settings):
    settings.REFERENCE_PAIRS = ["BTC/USD", "BTC/EURE"]
    with pytest.raises(ReferenceUnavailable) as refused:
        reference_rate_use("BTC/EURE", purpose="decision")
    assert "needs BTC/EUR in REFERENCE_PAIRS" in refused.value.message


def test_samples_are_stored_on_change_beyond_the_bps_or_every_n_seconds_not_per_tick(prices, settings):
    settings.REFERENCE_SAMPLE_BPS = 5
    settings.REFERENCE_SAMPLE_SECONDS = 60
    prices(kraken="60000", pair="BTC/EUR")
    first = {s.pair: s for s in samples_update()}
    assert set(first) == {"BTC/EUR", "BTC/USD", "ETH/USD", "BTC/EURE"}
    assert first["BTC/USD"].outcome == "unhealthy"
    for price in ("60001", "60010", "60020"):  # ticks within 5 bps of the sample
        prices(kraken=price)
        assert samples_update() == []
    prices(kraken="60031")
    assert [s.pair for s in samples_update()] == ["BTC/EUR", "BTC/EURE"]
    later = timezone.now() + timedelta(seconds=61)
    prices(kraken="60031")
    assert len(samples_update(now=later)) == 4  # the heartbeat: every pair again


def test_retention_deletes_old_unpinned_samples_only(prices, settings):
    settings.REFERENCE_SAMPLE_RETENTION_DAYS = 30
    prices(kraken="60000")
    pinned = reference_rate_use("BTC/EUR", purpose="risk_check").sample_id
    unpinned = samples_update(now=timezone.now() + timedelta(seconds=120))
    old = timezone.now() - timedelta(days=31)
    ReferenceSample.objects.update(taken_at=old)
    assert samples_purge() == len(unpinned)
    assert list(ReferenceSample.objects.values_list("pk", flat=True)) == [pinned]
