"""Deliveries driven step by step (the clock is passed in), against a real HTTP receiver on
loopback: signatures, event mapping and ownership, the retry schedule, 410, redirects,
timeouts, SSRF at delivery time, disabling after continuous failure, secret rotation."""

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.webhooks.conftest import record
from trading import outbox
from trading.models import Event
from webhooks import services
from webhooks.models import WebhookAllowlist, WebhookAttempt, WebhookDelivery, WebhookNotice
from webhooks.sandbox import Reply

pytestmark = pytest.mark.django_db

SCHEDULE = [5, 30, 120, 600, 1800, 3600, 10800, 21600, 43200]


def _deliveries_for(event):
    outbox.outbox_dispatch()
    return list(WebhookDelivery.objects.filter(event_id=event.id).order_by("id"))


def _one_delivery(topic, user, **payload):
    event = record(topic, user.pk, **payload)
    (delivery,) = _deliveries_for(event)
    return delivery


def test_a_delivery_carries_both_signatures(user, make_endpoint, receiver):
    # given an endpoint subscribed to trade.executed
    endpoint, secret = make_endpoint(user, ["trade.executed"])
    delivery = _one_delivery("order.filled", user, order_id=7, price="101.5")
    # when
    outcome = services.delivery_attempt(delivery_id=delivery.pk)
    # then
    assert outcome.status == "delivered"
    (req,) = receiver.requests
    payload = Webhook(secret).verify(req.body, req.headers)  # Standard Webhooks
    assert payload == {
        "id": delivery.webhook_id,
        "event_type": "trade.executed",
        "timestamp": Event.objects.get(pk=delivery.event_id).occurred_at.isoformat().replace("+00:00", "Z"),
        "data": {"user_id": user.pk, "order_id": 7, "price": "101.5"},
    }
    assert req.headers["webhook-id"] == delivery.webhook_id
    expected = "sha256=" + hmac.new(secret.encode(), req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req.headers["x-webhook-signature"], expected)  # MarqetFi
    assert req.headers["x-webhook-event-type"] == "trade.executed"
    assert req.headers["x-webhook-delivery-id"] == delivery.webhook_id
    assert req.headers["x-webhook-timestamp"] == req.headers["webhook-timestamp"]
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 44).verify(req.body, req.headers)  # a wrong secret fails
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == ("delivered", 1, 200)
    (attempt,) = delivery.attempt_log.all()
    assert (attempt.number, attempt.response_code, attempt.response_body) == (1, 200, "ok")


@pytest.mark.parametrize(
    ("topic", "event_type"),
    [
        ("order.filled", "trade.executed"),
        ("trade.closed", "trade.closed"),
        ("order.triggered", "order.triggered"),
        ("order.rejected", "order.rejected"),
        ("risk.rejected", "order.rejected"),
        ("position.updated", "position.updated"),
        ("position.liquidated", "position.liquidated"),
        ("deposit.completed", "deposit.completed"),
        ("swap.completed", "swap.completed"),
        ("delegation.revoked", "delegation.updated"),
    ],
)
def test_ledger_topics_map_to_event_types(user, make_endpoint, topic, event_type):
    make_endpoint(user, ["*"])
    assert _one_delivery(topic, user).event_type == event_type


def test_only_the_owners_subscribed_active_endpoints_get_the_event(user, other_user, make_endpoint):
    # given alice: one endpoint for trades, one for deposits, one inactive; bob: one for everything
    trades, _ = make_endpoint(user, ["trade.executed"])
    make_endpoint(user, ["deposit.completed"])
    inactive, _ = make_endpoint(user, ["*"])
    services.endpoint_update(endpoint=inactive, actor="test", is_active=False)
    make_endpoint(other_user, ["*"])
    # when alice's trade happens
    event = record("order.filled", user.pk)
    # then only her trade endpoint gets it
    assert [d.endpoint_id for d in _deliveries_for(event)] == [trades.pk]
    # an event naming no owner, and a topic that is not mapped, go nowhere
    assert _deliveries_for(record("order.filled", None)) == []
    assert _deliveries_for(record("order.accepted", user.pk)) == []


def test_the_handler_creates_each_delivery_once(user, make_endpoint):
    make_endpoint(user, ["*"])
    event = record("trade.closed", user.pk)
    services.deliveries_create_for_event(event)
    services.deliveries_create_for_event(event)  # the outbox redelivering the same event
    assert WebhookDelivery.objects.filter(event_id=event.id).count() == 1


def _run_until_settled(delivery, now, limit=20):
    """Attempt the delivery at each scheduled time until it settles; return the attempt times."""
    times = []
    for _ in range(limit):
        outcome = services.delivery_attempt(delivery_id=delivery.pk, now=now)
        times.append(now)
        if outcome.status != "retry":
            return times, outcome
        now = outcome.next_attempt_at
    raise AssertionError("did not settle")


def test_fails_three_times_then_succeeds_with_the_same_webhook_id_on_the_schedule(user, make_endpoint, receiver):
    # given a receiver that fails three ways, then accepts
    make_endpoint(user)
    delivery = _one_delivery("trade.closed", user)
    receiver.script(Reply(500), Reply(503), Reply(502), Reply(200))
    t0 = timezone.now() + timedelta(days=400)  # far from real time: only our calls are due
    # when an early attempt is made before the retry is due, nothing is sent
    first = services.delivery_attempt(delivery_id=delivery.pk, now=t0)
    assert first.status == "retry"
    assert services.delivery_attempt(delivery_id=delivery.pk, now=t0 + timedelta(seconds=4)).status == "skipped"
    times, outcome = _run_until_settled(delivery, first.next_attempt_at)
    times = [t0, *times]
    # then
    assert outcome.status == "delivered"
    assert [r.headers["webhook-id"] for r in receiver.requests] == [delivery.webhook_id] * 4
    assert len({r.body for r in receiver.requests}) == 1  # the same body every time
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    for gap, base in zip(gaps, SCHEDULE, strict=False):
        assert base * 0.9 <= gap <= base * 1.1
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.attempts == 4
    assert [(a.number, a.response_code) for a in delivery.attempt_log.all()] == [
        (1, 500),
        (2, 503),
        (3, 502),
        (4, 200),
    ]


def test_a_receiver_that_never_recovers_fails_after_about_a_day(user, make_endpoint, receiver):
    make_endpoint(user)
    receiver.default = Reply(503)
    delivery = _one_delivery("trade.closed", user)
    t0 = timezone.now() + timedelta(days=400)
    times, outcome = _run_until_settled(delivery, t0)
    assert outcome.status == "failed"
    assert len(times) == len(SCHEDULE) + 1 == len(receiver.requests)
    total = (times[-1] - t0).total_seconds()
    assert sum(SCHEDULE) * 0.9 <= total <= sum(SCHEDULE) * 1.1
    assert 20 * 3600 < total < 26 * 3600
    delivery.refresh_from_db()
    assert (delivery.status, delivery.next_attempt_at, delivery.last_response_code) == ("failed", None, 503)


def test_retry_after_on_429_is_honoured_within_bounds(user, make_endpoint, receiver):
    make_endpoint(user)
    t0 = timezone.now() + timedelta(days=400)
    receiver.script(Reply(429, headers={"Retry-After": "120"}), Reply(429, headers={"Retry-After": "999999"}))
    d = _one_delivery("trade.closed", user)
    first = services.delivery_attempt(delivery_id=d.pk, now=t0)
    assert first.next_attempt_at == t0 + timedelta(seconds=120)
    second = services.delivery_attempt(delivery_id=d.pk, now=first.next_attempt_at)
    assert second.next_attempt_at == first.next_attempt_at + timedelta(seconds=3600)  # capped


def test_410_gone_disables_the_endpoint_with_an_event_and_a_notice(user, make_endpoint, receiver):
    endpoint, _ = make_endpoint(user)
    d1 = _one_delivery("trade.closed", user)
    d2 = _one_delivery("order.filled", user)
    receiver.script(Reply(410))
    # when
    assert services.delivery_attempt(delivery_id=d1.pk).status == "gone"
    # then
    endpoint.refresh_from_db()
    assert not endpoint.is_active and "410" in endpoint.disabled_reason
    assert Event.objects.filter(topic="webhook.endpoint_disabled", aggregate_id=str(endpoint.pk)).exists()
    notice = WebhookNotice.objects.get(endpoint=endpoint)
    assert endpoint.url in notice.text and "410" in notice.text
    d2.refresh_from_db()
    assert d2.status == "failed" and d2.last_error == "endpoint disabled"
    assert services.delivery_attempt(delivery_id=d2.pk).status == "skipped"
    assert len(receiver.requests) == 1


def test_other_4xx_is_a_final_failure(user, make_endpoint, receiver):
    endpoint, _ = make_endpoint(user)
    receiver.script(Reply(400, body=b"bad payload" * 500))
    d = _one_delivery("trade.closed", user)
    assert services.delivery_attempt(delivery_id=d.pk).status == "failed"
    d.refresh_from_db()
    assert (d.status, d.last_response_code, d.next_attempt_at) == ("failed", 400, None)
    assert len(d.attempt_log.get().response_body) == 2048
    endpoint.refresh_from_db()
    assert endpoint.is_active  # one failure does not disable


def test_a_redirect_is_not_followed(user, make_endpoint, receiver):
    make_endpoint(user)
    receiver.script(Reply(307, headers={"Location": receiver.url("/elsewhere")}))
    d = _one_delivery("trade.closed", user)
    assert services.delivery_attempt(delivery_id=d.pk).status == "failed"
    assert [r.path for r in receiver.requests] == ["/hook"]
    d.refresh_from_db()
    assert "redirect not followed" in d.last_error and d.last_response_code == 307


@override_settings(WEBHOOK_TIMEOUT=0.3)
def test_a_timeout_is_retried(user, make_endpoint, receiver):
    make_endpoint(user)
    receiver.script(Reply(200, delay=1.5))
    d = _one_delivery("trade.closed", user)
    outcome = services.delivery_attempt(delivery_id=d.pk)
    assert outcome.status == "retry" and outcome.error.startswith("timeout")
    assert d.attempt_log.get().response_code is None


def test_a_connection_error_is_retried(user, allow_loopback, receiver):
    # given an endpoint on a port where nothing listens
    receiver.stop()
    services.endpoint_create(user=user, url=receiver.url(), event_types=["*"])
    d = _one_delivery("trade.closed", user)
    outcome = services.delivery_attempt(delivery_id=d.pk)
    assert outcome.status == "retry" and outcome.error.startswith("connection")


def test_the_target_is_checked_again_at_delivery_time(user, make_endpoint, receiver, allow_loopback):
    make_endpoint(user)
    d = _one_delivery("trade.closed", user)
    allow_loopback.delete()  # the operator withdraws the allowlist entry
    outcome = services.delivery_attempt(delivery_id=d.pk)
    assert outcome.status == "failed" and "loopback" in outcome.error
    assert receiver.requests == []


def test_a_host_name_is_connected_to_at_its_checked_address(user, receiver, db):
    # given "localhost" allowlisted by name
    WebhookAllowlist.objects.create(host="localhost", allow_http=True)
    services.endpoint_create(user=user, url=f"http://localhost:{receiver.port}/hook", event_types=["*"])
    d = _one_delivery("trade.closed", user)
    services.delivery_attempt(delivery_id=d.pk)
    (req,) = receiver.requests
    assert req.headers["host"] == f"localhost:{receiver.port}"  # the original name, not the IP


@override_settings(WEBHOOK_DISABLE_AFTER=3600)
def test_an_endpoint_failing_continuously_is_disabled(user, make_endpoint, receiver):
    endpoint, _ = make_endpoint(user)
    receiver.default = Reply(500)
    t0 = timezone.now() + timedelta(days=400)
    d1 = _one_delivery("trade.closed", user)
    services.delivery_attempt(delivery_id=d1.pk, now=t0)
    endpoint.refresh_from_db()
    assert endpoint.failing_since == t0 and endpoint.is_active
    # when it still fails two hours later
    d2 = _one_delivery("order.filled", user)
    services.delivery_attempt(delivery_id=d2.pk, now=t0 + timedelta(hours=2))
    # then
    endpoint.refresh_from_db()
    assert not endpoint.is_active and "every attempt has failed" in endpoint.disabled_reason
    assert WebhookNotice.objects.filter(endpoint=endpoint).count() == 1
    d1.refresh_from_db()
    assert d1.status == "failed"


def test_a_success_resets_the_failing_clock(user, make_endpoint, receiver):
    endpoint, _ = make_endpoint(user)
    receiver.script(Reply(500))
    d = _one_delivery("trade.closed", user)
    t0 = timezone.now() + timedelta(days=400)
    retry = services.delivery_attempt(delivery_id=d.pk, now=t0)
    endpoint.refresh_from_db()
    assert endpoint.failing_since == t0
    services.delivery_attempt(delivery_id=d.pk, now=retry.next_attempt_at)
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None


def test_rotation_signs_with_both_secrets_during_the_grace_period_and_only_the_new_after(user, make_endpoint, receiver):
    endpoint, old = make_endpoint(user)
    # during the grace period
    new = services.endpoint_rotate_secret(endpoint=endpoint, actor="test")
    services.delivery_attempt(delivery_id=_one_delivery("trade.closed", user).pk)
    req = receiver.requests[-1]
    assert len(req.headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(req.body, req.headers)
    Webhook(old).verify(req.body, req.headers)
    assert (
        req.headers["x-webhook-signature"] == "sha256=" + hmac.new(new.encode(), req.body, hashlib.sha256).hexdigest()
    )
    # after it: rotate again as if 25 hours ago, so the grace has run out
    newer = services.endpoint_rotate_secret(endpoint=endpoint, actor="test", now=timezone.now() - timedelta(hours=25))
    services.delivery_attempt(delivery_id=_one_delivery("order.filled", user).pk)
    req = receiver.requests[-1]
    assert len(req.headers["webhook-signature"].split(" ")) == 1
    Webhook(newer).verify(req.body, req.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(req.body, req.headers)


def test_a_delivery_of_an_endpoint_a_run_holds_waits_without_an_attempt(user, make_endpoint, receiver):
    endpoint, _ = make_endpoint(user)
    t0 = timezone.now() + timedelta(days=400)
    # given a run holding the endpoint: two of its deliveries in flight
    busy = [_one_delivery("trade.closed", user, n=n) for n in range(2)]
    WebhookDelivery.objects.filter(pk__in=[d.pk for d in busy]).update(
        status="delivering", lease_until=t0 + timedelta(seconds=60)
    )
    d = _one_delivery("order.filled", user)
    # when
    outcome = services.delivery_attempt(delivery_id=d.pk, now=t0)
    # then it is left to that run (which claims it when its group is done), unattempted
    assert outcome.status == "busy" and receiver.requests == []
    d.refresh_from_db()
    assert (d.status, d.attempts, d.total_attempts) == ("pending", 0, 0)
    assert services.deliveries_run() == {}  # a run claims nothing of the held endpoint either
    # an in-flight delivery whose lease ran out (worker lost) no longer holds the endpoint
    later = t0 + timedelta(seconds=61)
    assert services.delivery_attempt(delivery_id=d.pk, now=later).status == "delivered"


@pytest.mark.django_db(transaction=True)
def test_a_claim_waiting_on_the_endpoint_lock_sees_the_claim_that_just_committed(user, make_endpoint):
    """Two runs claim deliveries of one endpoint at once: the second waits for the first's
    endpoint lock and must then see the endpoint held (nothing claimed, not a second group)."""
    import threading
    import time

    from django.db import connection, transaction

    endpoint, _ = make_endpoint(user)
    # two due deliveries written directly (no outbox, so no session worker takes them first)
    now = timezone.now() + timedelta(days=400)
    first, second = (
        WebhookDelivery.objects.create(
            webhook_id=f"msg_claim_race_{n}",
            endpoint=endpoint,
            event_id=f"EVT{n}",
            event_type="trade.closed",
            payload={"n": n},
            next_attempt_at=now,
        )
        for n in range(2)
    )
    claimed = threading.Event()
    result = {}

    def run_a():
        try:
            with transaction.atomic():
                result["a"] = services._claim_batch(now=now, limit=1, delivery_id=first.pk)
                claimed.set()
                time.sleep(0.5)  # B is now waiting for the endpoint's lock
        finally:
            connection.close()

    def run_b():
        claimed.wait(5)
        try:
            result["b"] = services._claim_batch(now=now, limit=10)
        finally:
            connection.close()

    threads = [threading.Thread(target=run_a), threading.Thread(target=run_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [c.delivery.pk for c in result["a"]] == [first.pk]
    assert result["b"] == []
    assert list(WebhookDelivery.objects.filter(status="delivering").values_list("pk", flat=True)) == [first.pk]


@override_settings(WEBHOOK_ENDPOINT_CONCURRENCY=2)
def test_a_run_sends_an_endpoints_batch_over_at_most_the_cap_of_keep_alive_connections(user, make_endpoint, receiver):
    # given ten due deliveries of one endpoint, whose receiver takes a moment per request
    endpoint, secret = make_endpoint(user)
    receiver.default = Reply(200, delay=0.05)
    deliveries = [_one_delivery("trade.closed", user, n=n) for n in range(10)]
    # when one run delivers them
    counts = services.deliveries_run()
    # then all arrive, never more than two at once, over at most two connections
    assert counts == {"delivered": 10}
    assert receiver.max_in_flight == 2
    assert len({r.peer for r in receiver.requests}) <= 2
    assert sorted(r.headers["webhook-id"] for r in receiver.requests) == sorted(d.webhook_id for d in deliveries)
    for r in receiver.requests:
        Webhook(secret).verify(r.body, r.headers)
    assert set(WebhookDelivery.objects.values_list("status", "attempts", "last_response_code")) == {
        ("delivered", 1, 200)
    }
    assert WebhookAttempt.objects.filter(number=1, response_code=200).count() == 10
    # and the next run reuses a kept-alive connection instead of opening one
    peers = {r.peer for r in receiver.requests}
    services.delivery_attempt(delivery_id=_one_delivery("order.filled", user).pk)
    assert receiver.requests[-1].peer in peers


@override_settings(WEBHOOK_ENDPOINT_CONCURRENCY=1, WEBHOOK_TIMEOUT=1, WEBHOOK_LEASE=6.6)
def test_an_attempt_that_could_outlast_its_lease_is_not_made(user, make_endpoint, receiver):
    """A send may start only while its timeout (+ LEASE_MARGIN) still fits in the lease: else
    the sweep could take the delivery back while the request is still going (a duplicate). The
    ones left go back untouched, and the run claims them again with a fresh lease."""
    make_endpoint(user)
    receiver.script(Reply(200, delay=0.8))  # the first takes 0.8 s: the others no longer fit
    deliveries = [_one_delivery("trade.closed", user, n=n) for n in range(3)]
    assert services.deliveries_run() == {"delivered": 3, "released": 2}
    assert len(receiver.requests) == 3
    for d in deliveries:
        d.refresh_from_db()
        # no attempt was counted or logged for the release
        assert (d.status, d.attempts, d.total_attempts) == ("delivered", 1, 1)
        assert list(d.attempt_log.values_list("number", flat=True)) == [1]


@override_settings(WEBHOOK_ENDPOINT_CONCURRENCY=1)
def test_after_a_410_the_rest_of_the_batch_is_not_sent_and_fails_with_the_endpoint(user, make_endpoint, receiver):
    endpoint, _ = make_endpoint(user)
    receiver.script(Reply(410))
    deliveries = [_one_delivery("trade.closed", user, n=n) for n in range(3)]
    counts = services.deliveries_run()
    assert counts == {"gone": 1, "released": 2}
    assert len(receiver.requests) == 1
    endpoint.refresh_from_db()
    assert not endpoint.is_active
    statuses = {d.pk: (d.status, d.attempts, d.last_error) for d in WebhookDelivery.objects.all()}
    assert statuses[deliveries[0].pk][:2] == ("failed", 1)
    assert statuses[deliveries[1].pk] == ("failed", 0, "endpoint disabled")
    assert statuses[deliveries[2].pk] == ("failed", 0, "endpoint disabled")


def test_the_sweep_recovers_a_lost_worker_and_requeues_overdue_deliveries(user, make_endpoint, receiver):
    make_endpoint(user)
    t0 = timezone.now() + timedelta(days=400)
    lost = _one_delivery("trade.closed", user)
    WebhookDelivery.objects.filter(pk=lost.pk).update(status="delivering", attempts=1, lease_until=t0)
    result = services.deliveries_sweep(now=t0 + timedelta(seconds=1))
    lost.refresh_from_db()
    assert result["recovered"] == 1
    assert (lost.status, lost.last_error) == ("pending", "worker lost during attempt 1")
    assert services.delivery_attempt(delivery_id=lost.pk, now=t0 + timedelta(seconds=2)).status == "delivered"


def test_the_body_is_stable_json(user, make_endpoint, receiver):
    make_endpoint(user)
    d = _one_delivery("trade.closed", user, b=2, a=1)
    services.delivery_attempt(delivery_id=d.pk)
    body = json.loads(receiver.requests[0].body)
    assert set(body) == {"id", "event_type", "timestamp", "data"}
    assert body["data"] == {"a": 1, "b": 2, "user_id": user.pk}


@pytest.fixture
def localhost_cert(tmp_path):
    """A self-signed certificate for the name "localhost" (key and cert PEM paths)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = timezone.now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def test_https_goes_to_the_checked_address_with_the_names_sni_and_certificate(user, localhost_cert, settings):
    # given an https receiver on 127.0.0.1 whose certificate names "localhost", allowlisted by name
    from webhooks.sandbox import Receiver

    WebhookAllowlist.objects.create(host="localhost")
    with Receiver(tls=localhost_cert) as rx:
        services.endpoint_create(user=user, url=rx.url(host="localhost"), event_types=["*"])
        # when the receiver's CA is not trusted, the certificate check fails (and is retried)
        d1 = _one_delivery("trade.closed", user)
        outcome = services.delivery_attempt(delivery_id=d1.pk)
        assert outcome.status == "retry" and "CERTIFICATE_VERIFY_FAILED" in outcome.error
        # when it is trusted, the request is made to the checked IP with SNI and Host "localhost"
        settings.WEBHOOK_CA_BUNDLE = localhost_cert[0]
        d2 = _one_delivery("order.filled", user)
        assert services.delivery_attempt(delivery_id=d2.pk).status == "delivered"
    assert rx.server_names[-1] == "localhost"
    assert rx.requests[-1].headers["host"] == f"localhost:{rx.port}"


def test_the_deliveries_schema_is_the_page_the_endpoint_returns(make_endpoint, user):
    """The schema said an array while the endpoint returns a page (schemathesis ST108)."""
    from drf_spectacular.generators import SchemaGenerator
    from rest_framework.test import APIClient

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/v1/webhooks/{id}/deliveries"]["get"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    page = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert page["properties"]["results"]["type"] == "array"
    assert {"limit", "offset", "status"} <= {p["name"] for p in operation["parameters"]}

    api = APIClient()
    api.force_authenticate(user)
    endpoint, _secret = make_endpoint(user)
    body = api.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries?limit=1").json()
    assert set(body) == set(page["properties"]) and isinstance(body["results"], list)
    assert api.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries?status=").status_code == 400


def test_deliveries_committed_while_a_run_waits_in_the_queue_enqueue_no_more(transactional_db, user, make_endpoint):
    """A burst of deliveries costs one queued run, not a task per delivery: while a kicked run
    waits in the queue (its mark is set) new deliveries publish nothing; once the mark is gone
    (the queue was purged) the next one kicks again. No worker here: the queue is purged before
    and after."""
    from django.core.cache import cache

    from config.celery import app
    from tests.conftest import _drain_worker, tasks_published, wait_for

    make_endpoint(user)

    def delivery(n):  # (a session worker may be the one dispatching it: wait for the row)
        event = record("trade.closed", user.pk, n=n)
        wait_for(lambda: outbox.outbox_dispatch() >= 0 and WebhookDelivery.objects.filter(event_id=event.id).exists())

    def run_went_by() -> bool:
        """A session worker's run (one left from an earlier test) started meanwhile: it cleared
        the mark and sent what it found, so this attempt proves nothing either way."""
        return WebhookDelivery.objects.exclude(status=WebhookDelivery.Status.PENDING, attempts=0).exists()

    made = 0
    try:
        for _attempt in range(5):
            _drain_worker()
            WebhookDelivery.objects.all().delete()
            with tasks_published("webhooks.tasks.webhook_deliver_task") as published:
                cache.set(services.RUN_QUEUED, 1, 60)  # a kicked run is waiting in the queue
                for _ in range(5):
                    delivery(made)
                    made += 1
            if not run_went_by():
                break
        assert published == []
        with tasks_published("webhooks.tasks.webhook_deliver_task") as published:
            services.run_mark_clear()  # purged: deliveries from now on need a run of their own
            # dispatched here, not by a dispatch task (which would make the run itself)
            _event_unkicked(user.pk, made)
            outbox.outbox_dispatch()
            assert len(published) == 1
    finally:
        app.control.purge()
        services.run_mark_clear()
    assert WebhookDelivery.objects.count() == 6  # all there for a run (a session worker's may have sent them)


@pytest.mark.django_db(transaction=True)
def test_deliveries_kicked_while_a_run_drains_enqueue_no_run_and_that_run_sends_them(user, make_endpoint, receiver):
    """A burst is one run: the draining run (the task's) absorbs the kicks of deliveries
    committed while it works and sends them before it ends; afterwards a kick enqueues again."""
    import threading
    import time

    from django.db import connection

    from config.celery import app
    from tests.conftest import _drain_worker, tasks_published

    endpoint, _ = make_endpoint(user)
    _drain_worker()

    def due(n):  # written directly (no outbox, so no session worker takes them first)
        return WebhookDelivery.objects.create(
            webhook_id=f"msg_drain_{n}",
            endpoint=endpoint,
            event_id=f"EVT{n}",
            event_type="trade.closed",
            payload={"n": n},
            next_attempt_at=timezone.now(),
        )

    release = threading.Event()
    receiver.script(Reply(200, hold=release))  # the first request is answered only when told
    due(0)
    result = {}

    def run():
        try:
            result["counts"] = services.deliveries_run(kicks=services.RUN_KICKS)
        finally:
            connection.close()

    runner = threading.Thread(target=run)
    try:
        with tasks_published("webhooks.tasks.webhook_deliver_task") as published:
            runner.start()
            deadline = time.monotonic() + 10
            while not receiver.requests and time.monotonic() < deadline:
                time.sleep(0.02)
            assert receiver.requests  # the run is draining, its first request held
            due(1)
            assert services.deliveries_kick() is False  # absorbed by the draining run
            release.set()
            runner.join(30)
            assert published == []
        assert result["counts"] == {"delivered": 2}
        assert sorted(r.headers["webhook-id"] for r in receiver.requests) == ["msg_drain_0", "msg_drain_1"]
        with tasks_published("webhooks.tasks.webhook_deliver_task") as published:
            assert services.deliveries_kick() is True  # the run ended: the next kick enqueues
            assert len(published) == 1
    finally:
        release.set()
        runner.join(30)
        app.control.purge()
        services.run_mark_clear()


@pytest.mark.django_db(transaction=True)
def test_while_a_dead_runs_drainer_lock_lasts_kicks_still_get_runs_that_send(
    user, make_endpoint, receiver, celery_worker
):
    """A run died while draining (its lock stays until it expires): once the kicks' counter has
    expired, a kick enqueues a run again, and that run (on the worker), not the drainer, still
    claims and sends."""
    from django.core.cache import cache

    from config.cache import cache_redis
    from tests.conftest import tasks_published, wait_for

    endpoint, _ = make_endpoint(user)
    try:
        assert services.RUN_KICKS.acquire()[0]  # the run that died
        cache_redis().delete(cache.make_key(services.RUN_QUEUED))  # its counter expired
        delivery = WebhookDelivery.objects.create(
            webhook_id="msg_after_death",
            endpoint=endpoint,
            event_id="EVT1",
            event_type="trade.closed",
            payload={"n": 1},
            next_attempt_at=timezone.now(),
        )
        with tasks_published("webhooks.tasks.webhook_deliver_task") as published:
            assert services.deliveries_kick() is True
            assert len(published) == 1
        wait_for(
            lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == WebhookDelivery.Status.DELIVERED,
            what="the kicked run delivered",
        )
        assert [r.headers["webhook-id"] for r in receiver.requests] == ["msg_after_death"]
        assert not services.RUN_KICKS.acquire()[0]  # the dead run's lock was never needed: still held
    finally:
        services.run_mark_clear()


@pytest.mark.django_db(transaction=True)
@override_settings(WEBHOOK_ENDPOINT_CONCURRENCY=2)
def test_a_run_claims_more_of_its_endpoint_while_a_group_is_sent_within_the_endpoints_cap(
    user, make_endpoint, receiver
):
    """A run does not wait for an endpoint's group to finish before it claims that endpoint's
    newer deliveries: they join the group's queue, and the cap counts both groups."""
    import threading
    import time

    from django.db import connection

    endpoint, secret = make_endpoint(user)
    now = timezone.now()

    def due(n):  # written directly (no outbox, so no session worker takes them first)
        return WebhookDelivery.objects.create(
            webhook_id=f"msg_overlap_{n}",
            endpoint=endpoint,
            event_id=f"EVT{n}",
            event_type="trade.closed",
            payload={"n": n},
            next_attempt_at=now,
        )

    release = threading.Event()
    receiver.script(Reply(200, hold=release))  # the first request is answered only when told
    first = [due(0), due(1)]
    result = {}

    def run():
        try:
            result["counts"] = services.deliveries_run()
        finally:
            connection.close()

    runner = threading.Thread(target=run)
    runner.start()
    try:
        # given the run's first group in flight (one request held, the other slot free)
        deadline = time.monotonic() + 10
        while len(receiver.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert {r.headers["webhook-id"] for r in receiver.requests} == {d.webhook_id for d in first}
        # when a newer delivery of the same endpoint becomes due
        late = due(2)
        # then the same run claims it while the held request is still open, and sends it
        deadline = time.monotonic() + 10
        while len(receiver.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert receiver.requests[-1].headers["webhook-id"] == late.webhook_id
    finally:
        release.set()
        runner.join(30)
    assert result["counts"] == {"delivered": 3}
    assert receiver.max_in_flight == 2  # the two groups shared the endpoint's two slots
    for r in receiver.requests:
        Webhook(secret).verify(r.body, r.headers)
    assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {("delivered", 1)}


def _event_unkicked(user_id: int, n: int) -> None:
    """A committed event whose dispatch the test makes itself (no kick: the session worker, if
    running, does not take it first)."""
    from django.db import transaction

    from trading.services.ledger import event_record

    with transaction.atomic():
        event_record(
            topic="trade.closed",
            aggregate_type="test",
            aggregate_id=n,
            payload={"user_id": user_id, "n": n},
            kick=False,
        )


@pytest.mark.django_db(transaction=True)
def test_a_dispatch_task_with_nothing_more_to_publish_makes_the_delivery_run_itself(user, make_endpoint, receiver):
    """One event at a time: the dispatch task that wrote the delivery sends it before it ends,
    without publishing a run task for the other worker process to start."""
    from tests.conftest import _drain_worker, tasks_published, wait_for

    make_endpoint(user)
    _drain_worker()
    _event_unkicked(user.pk, 1)
    try:
        with tasks_published("webhooks.tasks.webhook_deliver_task") as published:
            assert outbox.outbox_dispatch_while_kicked() >= 1
        assert published == []
        # The attempt's log row and the delivery's status are written one after the other; the
        # session's worker may have been the one to finish a run, so wait for the status.
        wait_for(lambda: WebhookDelivery.objects.get().status == WebhookDelivery.Status.DELIVERED, what="delivered")
        delivery = WebhookDelivery.objects.get()
        assert [r.headers["webhook-id"] for r in receiver.requests] == [delivery.webhook_id]
    finally:
        _drain_worker()


@pytest.mark.django_db(transaction=True)
def test_a_dispatch_kicked_while_it_publishes_hands_the_delivery_run_to_a_task(user, make_endpoint, receiver):
    """A burst: a commit kicks the dispatch while it publishes, so it will publish again; the
    run for the deliveries it wrote goes to a task of its own at once, not after the burst."""
    from tests.conftest import _drain_worker, tasks_published

    make_endpoint(user)
    _drain_worker()
    kicked = []

    def commit_meanwhile(event):
        if not kicked:  # the first round: another event is committed and kicks the dispatcher
            kicked.append(outbox.DISPATCH_KICKS.kick())

    outbox.register_handler("test-commit-meanwhile", commit_meanwhile, topics=["trade.*"])
    _event_unkicked(user.pk, 1)  # one event: one message a round for each handler
    try:
        with tasks_published("webhooks.tasks.webhook_deliver_task") as published:
            outbox.outbox_dispatch_while_kicked()
        assert kicked == [False]  # counted on the draining dispatch, not enqueued
        assert len(published) == 1
        assert WebhookDelivery.objects.count() == 1
    finally:
        outbox.unregister_handler("test-commit-meanwhile")
        _drain_worker()
        services.run_mark_clear()
        outbox.kick_mark_clear()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("batch_size", [200, 1], ids=["one-round", "more-after-a-round"])
def test_a_dispatch_given_a_burst_hands_the_delivery_run_to_a_task(user, make_endpoint, batch_size):
    """Events committed together (a burst): the run is published when their deliveries commit,
    as before, not made by the dispatch after its last round. With one message a round, the
    round after the first finds more, so the run for the first round's deliveries is published
    then, not made after the whole backlog."""
    from tests.conftest import _drain_worker, tasks_published

    make_endpoint(user)
    _drain_worker()
    _event_unkicked(user.pk, 1)
    _event_unkicked(user.pk, 2)
    try:
        with (
            override_settings(OUTBOX_BATCH_SIZE=batch_size),
            tasks_published("webhooks.tasks.webhook_deliver_task") as published,
        ):
            outbox.outbox_dispatch_while_kicked()
        assert len(published) == 1
        assert WebhookDelivery.objects.count() == 2
    finally:
        _drain_worker()
        services.run_mark_clear()
        outbox.kick_mark_clear()


def test_outside_a_dispatch_task_the_follow_up_is_handed_off_at_once():
    done = []
    assert outbox.after_dispatch(lambda: done.append("here"), otherwise=lambda: done.append("task") or 7) == 7
    assert done == ["task"]
