"""The endpoints API: create (secret shown once), list, update, delete, rotate, ping,
owner isolation and SSRF refusal at creation."""

import base64

import pytest
from rest_framework.test import APIClient

from trading.models import Event
from webhooks.models import WebhookAllowlist, WebhookDelivery, WebhookEndpoint


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def _create(api, url, event_types=("trade.executed",)):
    return api.post("/api/v1/webhooks", {"url": url, "event_types": list(event_types)}, format="json")


def test_create_returns_the_secret_once_and_stores_it_encrypted(api, allow_loopback, receiver):
    # when
    r = _create(api, receiver.url(), ["trade.executed", "order.rejected"])
    # then
    assert r.status_code == 201, r.content
    secret = r.json()["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24
    endpoint = WebhookEndpoint.objects.get(pk=r.json()["id"])
    assert secret not in endpoint.secret_encrypted
    assert r.json()["secret_fingerprint"] == endpoint.secret_fingerprint
    assert endpoint.event_types == ["order.rejected", "trade.executed"]
    assert Event.objects.filter(topic="webhook.endpoint_created", aggregate_id=str(endpoint.pk)).exists()
    # the secret never appears again
    listed = api.get("/api/v1/webhooks").json()
    assert secret not in str(listed) and "secret" not in listed["webhooks"][0]
    assert "secret" not in api.get(f"/api/v1/webhooks/{endpoint.pk}").json()


def test_unknown_event_type_is_refused(api, allow_loopback, receiver):
    r = _create(api, receiver.url(), ["trade.executed", "moon.landed"])
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "VALIDATION_ERROR"
    # the answer says what to give instead (the ledger's `order.filled` is `trade.executed` here)
    (message,) = r.json()["error"]["details"]["event_types"]["1"]
    assert message.startswith('"moon.landed" is not an event type: give trade.executed, trade.closed,')
    assert message.endswith(", *.")
    r = _create(api, receiver.url(), [])
    assert r.json()["error"]["details"] == {"event_types": ["Give at least one event type."]}


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[fd00:ec2::254]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://224.0.0.1/hook",
        "https://0.0.0.0/hook",
        "https://localhost/hook",
    ],
)
def test_private_and_special_targets_are_refused_at_creation(api, url):
    r = _create(api, url)
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == "WEBHOOK_TARGET_REFUSED"
    assert not WebhookEndpoint.objects.exists()


def test_allowlisted_targets_are_accepted_and_http_needs_the_allowlist_to_say_so(api, db):
    # given an allowlist entry for 10.1.0.0/16 without http, and one for localhost with http
    WebhookAllowlist.objects.create(cidr="10.1.0.0/16", allow_http=False)
    WebhookAllowlist.objects.create(host="localhost", allow_http=True)
    assert _create(api, "https://10.1.2.3/hook").status_code == 201
    assert _create(api, "http://10.1.2.3/hook").json()["error"]["code"] == "WEBHOOK_HTTPS_REQUIRED"
    assert _create(api, "https://10.2.0.1/hook").status_code == 400  # outside the network
    assert _create(api, "http://localhost:9/hook").status_code == 201
    # a public address still needs https
    assert _create(api, "http://93.184.216.34/hook").json()["error"]["code"] == "WEBHOOK_HTTPS_REQUIRED"
    assert _create(api, "https://93.184.216.34/hook").status_code == 201
    assert _create(api, "ftp://93.184.216.34/hook").status_code == 400


def test_update_and_delete(api, allow_loopback, receiver):
    pk = _create(api, receiver.url()).json()["id"]
    r = api.patch(
        f"/api/v1/webhooks/{pk}",
        {"event_types": ["*"], "description": "all of it", "is_active": False},
        format="json",
    )
    assert r.status_code == 200, r.content
    assert (r.json()["event_types"], r.json()["is_active"], r.json()["description"]) == (["*"], False, "all of it")
    assert api.patch(f"/api/v1/webhooks/{pk}", {"url": "https://10.9.9.9/x"}, format="json").status_code == 400
    assert api.patch(f"/api/v1/webhooks/{pk}", {"is_active": True}, format="json").json()["is_active"] is True
    assert api.delete(f"/api/v1/webhooks/{pk}").status_code == 204
    assert not WebhookEndpoint.objects.filter(pk=pk).exists()
    assert Event.objects.filter(topic="webhook.endpoint_deleted", aggregate_id=str(pk)).exists()


def test_rotate_returns_a_new_secret_and_keeps_the_old_for_the_grace_period(api, allow_loopback, receiver):
    created = _create(api, receiver.url()).json()
    r = api.post(f"/api/v1/webhooks/{created['id']}/rotate-secret")
    assert r.status_code == 200
    assert r.json()["secret"].startswith("whsec_") and r.json()["secret"] != created["secret"]
    assert r.json()["secret_fingerprint"] != created["secret_fingerprint"]
    assert r.json()["previous_secret_expires_at"] is not None


def test_test_button_queues_a_ping(api, allow_loopback, receiver):
    pk = _create(api, receiver.url()).json()["id"]
    r = api.post(f"/api/v1/webhooks/{pk}/test")
    assert r.status_code == 202
    delivery = WebhookDelivery.objects.get(pk=r.json()["delivery_id"])
    assert delivery.event_type == "ping" and delivery.payload["event_type"] == "ping"


def test_another_users_endpoint_is_not_found(api, user, other_user, allow_loopback, receiver):
    # given bob's endpoint
    bob = APIClient()
    bob.force_authenticate(other_user)
    pk = _create(bob, receiver.url()).json()["id"]
    # then alice sees nothing of it
    assert api.get("/api/v1/webhooks").json() == {"webhooks": []}
    assert api.get(f"/api/v1/webhooks/{pk}").status_code == 404
    assert api.patch(f"/api/v1/webhooks/{pk}", {"is_active": False}, format="json").status_code == 404
    assert api.post(f"/api/v1/webhooks/{pk}/rotate-secret").status_code == 404
    assert api.post(f"/api/v1/webhooks/{pk}/test").status_code == 404
    assert api.get(f"/api/v1/webhooks/{pk}/deliveries").status_code == 404
    assert api.delete(f"/api/v1/webhooks/{pk}").status_code == 404
    assert WebhookEndpoint.objects.get(pk=pk).is_active


def test_anonymous_is_refused(db):
    assert APIClient().get("/api/v1/webhooks").status_code in (401, 403)


def test_endpoints_are_in_the_openapi_schema(api):
    paths = APIClient().get("/api/schema/", {"format": "json"}).json()["paths"]
    for path in (
        "/api/v1/webhooks",
        "/api/v1/webhooks/{id}",
        "/api/v1/webhooks/{id}/rotate-secret",
        "/api/v1/webhooks/{id}/test",
        "/api/v1/webhooks/{id}/deliveries",
    ):
        assert path in paths


def test_the_admin_never_shows_a_secret(staff_client, user, make_endpoint):
    endpoint, secret = make_endpoint(user, ["*"])
    page = staff_client.get(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/").content.decode()
    assert endpoint.secret_fingerprint in page
    assert secret not in page and endpoint.secret_encrypted not in page
    assert secret not in staff_client.get("/admin/webhooks/webhookendpoint/").content.decode()


def test_admin_pages_render_with_filters_and_edits_go_through_the_service(staff_client, user, make_endpoint):
    endpoint, _ = make_endpoint(user, ["*"])
    for url in (
        "/admin/webhooks/webhookendpoint/?is_active__exact=1",
        "/admin/webhooks/webhookdelivery/?status__exact=failed",
        "/admin/webhooks/webhookallowlist/",
        "/admin/webhooks/webhooknotice/",
    ):
        assert staff_client.get(url).status_code == 200, url
    # when an operator deactivates the endpoint in the admin
    r = staff_client.post(
        f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/", {"description": "paused by ops", "is_active": ""}
    )
    assert r.status_code == 302
    endpoint.refresh_from_db()
    assert not endpoint.is_active and endpoint.description == "paused by ops"
    assert Event.objects.filter(topic="webhook.endpoint_updated", actor="admin:op").exists()


def test_secrets_are_not_logged(caplog, user, make_endpoint, receiver):
    import logging

    from tests.webhooks.conftest import record
    from trading import outbox
    from webhooks import services

    caplog.set_level(logging.DEBUG)
    endpoint, secret = make_endpoint(user, ["*"])
    rotated = services.endpoint_rotate_secret(endpoint=endpoint, actor="test")
    record("trade.closed", user.pk)
    outbox.outbox_dispatch()
    services.delivery_attempt(delivery_id=WebhookDelivery.objects.get().pk)
    assert receiver.requests
    text = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert secret not in text and rotated not in text


# --- the seed API's shapes (seed 003 §4.7) --------------------------------------------------------


def test_a_client_chosen_secret_is_kept_and_signs_the_deliveries(api, user, allow_loopback, receiver):
    import hashlib
    import hmac

    from standardwebhooks.webhooks import Webhook

    from tests.webhooks.conftest import record
    from trading import outbox
    from webhooks import services

    secret = "my-own-webhook-secret-0123456789"  # 32 bytes
    r = api.post(
        "/api/v1/webhooks",
        {"url": receiver.url(), "secret": secret, "event_types": ["trade.executed"]},
        format="json",
    )
    assert r.status_code == 201, r.content
    assert r.json()["secret"] == secret and r.json()["is_active"] is True and r.json()["created_at"]
    record("order.filled", user.pk, order_id=7)
    outbox.outbox_dispatch()
    (delivery,) = WebhookDelivery.objects.filter(endpoint_id=r.json()["id"])
    assert services.delivery_attempt(delivery_id=delivery.pk).status == "delivered"
    (req,) = receiver.requests
    expected = "sha256=" + hmac.new(secret.encode(), req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req.headers["x-webhook-signature"], expected)
    Webhook(base64.b64encode(secret.encode()).decode()).verify(req.body, req.headers)  # Standard Webhooks


@pytest.mark.parametrize(
    "secret", ["webhook_secret_key", "x" * 23, "whsec_" + base64.b64encode(b"k" * 23).decode(), "whsec_not*base64"]
)
def test_a_weak_secret_is_refused_with_a_clear_error(api, allow_loopback, receiver, secret):
    r = api.post(
        "/api/v1/webhooks",
        {"url": receiver.url(), "secret": secret, "event_types": ["trade.executed"]},
        format="json",
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "WEAK_SECRET", r.content
    assert "24 bytes" in r.json()["error"]["message"] or "base64" in r.json()["error"]["message"]
    assert not WebhookEndpoint.objects.exists()


def test_put_replaces_url_event_types_and_active(api, user, allow_loopback, receiver):
    pk = _create(api, receiver.url()).json()["id"]
    body = {"url": receiver.url() + "/v2", "event_types": ["trade.executed", "position.updated"], "is_active": True}
    r = api.put(f"/api/v1/webhooks/{pk}", body, format="json")
    assert r.status_code == 200, r.content
    assert {k: r.json()[k] for k in ("id", "url", "event_types", "is_active")} == {
        "id": pk,
        "url": body["url"],
        "event_types": ["position.updated", "trade.executed"],
        "is_active": True,
    }
    assert api.put(f"/api/v1/webhooks/{pk}", {"url": receiver.url()}, format="json").status_code == 400


def test_the_list_is_under_webhooks_with_last_delivery_and_retry_count(api, user, allow_loopback, receiver):
    from django.utils import timezone

    pk = _create(api, receiver.url()).json()["id"]
    (row,) = api.get("/api/v1/webhooks").json()["webhooks"]
    assert (row["id"], row["last_delivery_at"], row["retry_count"]) == (pk, None, 0)
    endpoint = WebhookEndpoint.objects.get(pk=pk)
    delivered_at = timezone.now()
    for n, (status, attempts) in enumerate([("delivered", 1), ("pending", 2), ("pending", 1), ("failed", 9)]):
        WebhookDelivery.objects.create(
            webhook_id=f"msg_{n}",
            endpoint=endpoint,
            event_id=f"E{n}",
            event_type="trade.executed",
            payload={},
            status=status,
            attempts=attempts,
            delivered_at=delivered_at if status == "delivered" else None,
        )
    (row,) = api.get("/api/v1/webhooks").json()["webhooks"]
    assert row["retry_count"] == 3 and row["last_delivery_at"].startswith(delivered_at.isoformat()[:19])
    one = api.get(f"/api/v1/webhooks/{pk}").json()
    assert (one["retry_count"], one["last_delivery_at"]) == (3, row["last_delivery_at"])


@pytest.mark.django_db(transaction=True)
def test_deleting_an_endpoint_while_a_run_records_an_attempt_waits_for_it_and_deletes_both(
    django_user_model, allow_loopback, receiver
):
    """A delivery run records an attempt (its delivery locked, the attempt not yet committed) as
    the owner deletes the endpoint: the delete waits for the run and takes the attempt with it,
    instead of failing at commit on an attempt that points at a deleted delivery (a 500)."""
    import threading
    from datetime import timedelta

    from django.db import connection, transaction
    from django.utils import timezone

    from tests.conftest import wait_for
    from webhooks import services
    from webhooks.models import WebhookAttempt, WebhookDelivery

    owner = django_user_model.objects.create_user(username="carol", email="carol@example.com")
    endpoint, _secret = services.endpoint_create(user=owner, url=receiver.url(), event_types=["*"])
    later = timezone.now() + timedelta(days=1)  # not due: no worker claims it meanwhile
    delivery = services._new_delivery(
        endpoint, event_id="01TESTEVENT", event_type="ping", occurred_at=later, data={}, now=later
    )
    delivery.save()
    recording, commit, deleted, errors = threading.Event(), threading.Event(), threading.Event(), []

    def run_records_an_attempt():
        try:
            with transaction.atomic():
                WebhookDelivery.objects.select_for_update().filter(pk=delivery.pk).update(attempts=1)
                WebhookAttempt.objects.create(delivery_id=delivery.pk, number=1, started_at=delivery.created_at)
                recording.set()
                commit.wait(30)
        finally:
            connection.close()

    def owner_deletes():
        try:
            services.endpoint_delete(endpoint=endpoint, actor="test")
        except Exception as exc:  # the failure this test is about
            errors.append(exc)
        finally:
            connection.close()
            deleted.set()

    threading.Thread(target=run_records_an_attempt, daemon=True).start()
    assert recording.wait(10)
    threading.Thread(target=owner_deletes, daemon=True).start()

    def delete_waits_on_a_lock():
        with connection.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return cur.fetchone()[0] > 0

    wait_for(delete_waits_on_a_lock, what="the delete waiting for the run")
    commit.set()
    assert deleted.wait(30)
    assert errors == []
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
    assert not WebhookDelivery.objects.filter(pk=delivery.pk).exists()
    assert not WebhookAttempt.objects.filter(delivery_id=delivery.pk).exists()
