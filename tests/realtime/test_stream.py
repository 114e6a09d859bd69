"""`/stream`: ledger topics with wildcards, per-user visibility, resume without gap or duplicate."""

import threading

import pytest
from django.db import connections

from tests.realtime.conftest import close_code, make_token, record, recv, recv_until, send, ws_connect
from trading.outbox import outbox_dispatch
from trading.realtime.consumers import StreamConsumer


def stream_subscribe(ws, topics, **extra):
    send(ws, {"type": "subscribe", "topics": topics, **extra})
    return recv_until(ws, lambda m: m["type"] in ("subscribed", "error"))


@pytest.mark.ledger_drift  # made-up order and trade events (no rows): a test of the event stream
def test_wildcard_topics_deliver_matching_events_as_envelopes(ws_server, make_user):
    user = make_user()
    with ws_connect(ws_server, "/stream", token=make_token(user)) as ws:
        ack = stream_subscribe(ws, ["order.*", "risk.*"])
        assert ack["topics"] == ["order.*", "risk.*"]
        accepted = record("order.accepted", user=user, aggregate_id="o-1")
        record("trade.opened", user=user, aggregate_type="trade")
        record("orders.archived", user=user)  # not order.*
        rejected = record("risk.rejected", user=user, aggregate_id="o-2")

        first, second = recv(ws), recv(ws)
        assert [first["eventId"], second["eventId"]] == [accepted.id, rejected.id]
        assert set(first) == {
            "type",
            "eventId",
            "timestamp",
            "topic",
            "correlationId",
            "causationId",
            "payload",
            "version",
        }
        assert first["type"] == "event" and first["topic"] == "order.accepted"
        assert first["payload"] == {"user_id": user.pk} and first["version"] == 1


@pytest.mark.ledger_drift  # made-up order and trade events (no rows): a test of the event stream
def test_users_see_only_their_own_events_and_staff_see_all(ws_server, make_user):
    alice, bob, staff = make_user(), make_user(), make_user(is_staff=True)
    with (
        ws_connect(ws_server, "/stream", token=make_token(alice)) as a,
        ws_connect(ws_server, "/stream", token=make_token(staff)) as s,
    ):
        stream_subscribe(a, ["*"])
        stream_subscribe(s, ["order.*"])
        of_bob = record("order.accepted", user=bob)
        system = record("order.expired")  # about nobody's object
        of_alice = record("order.filled", user=alice)
        assert recv(a)["eventId"] == of_alice.id  # neither bob's nor the system's came first
        assert [recv(s)["eventId"] for _ in range(3)] == [of_bob.id, system.id, of_alice.id]


@pytest.mark.ledger_drift  # made-up order and trade events (no rows): a test of the event stream
def test_correlation_id_narrows_the_stream(ws_server, make_user):
    user = make_user()
    from django.db import transaction

    from trading.services.ledger import event_record

    with ws_connect(ws_server, "/stream", token=make_token(user)) as ws:
        stream_subscribe(ws, ["*"], correlationId="flow-7")
        with transaction.atomic():
            event_record(topic="order.accepted", aggregate_type="order", aggregate_id=1, payload={"user_id": user.pk})
            wanted = event_record(
                topic="order.filled",
                aggregate_type="order",
                aggregate_id=1,
                payload={"user_id": user.pk},
                correlation_id="flow-7",
            )
        outbox_dispatch()
        got = recv(ws)
        assert got["eventId"] == wanted.id and got["correlationId"] == "flow-7"


@pytest.mark.ledger_drift  # made-up order and trade events (no rows): a test of the event stream
def test_resume_replays_missed_events_then_goes_live_with_no_gap_and_no_duplicate(ws_server, make_user, monkeypatch):
    monkeypatch.setattr(StreamConsumer, "replay_batch_size", 16)  # several batches
    user, other = make_user(), make_user()
    # given a client that saw two events and went away
    with ws_connect(ws_server, "/stream", token=make_token(user)) as ws:
        stream_subscribe(ws, ["order.*"])
        record("order.accepted", user=user)
        last_seen = record("order.filled", user=user).id
        assert [recv(ws)["topic"], recv(ws)["eventId"]] == ["order.accepted", last_seen]

    # while it is away: published events, noise, and events committed but not yet published
    missed = [record("order.accepted", user=user, n=n).id for n in range(60)]
    record("order.accepted", user=other)
    record("trade.opened", user=user, aggregate_type="trade")
    unpublished = [record("order.filled", user=user, n=n, dispatch=False).id for n in range(10)]

    # and a writer that keeps committing while the client resumes
    during, stop = [], threading.Event()

    def keep_writing():
        try:
            for n in range(60):
                during.append(record("order.updated", user=user, n=n).id)
                if stop.is_set():
                    break
        finally:
            connections.close_all()

    with ws_connect(ws_server, "/stream", token=make_token(user)) as ws:
        writer = threading.Thread(target=keep_writing)
        writer.start()
        ack = stream_subscribe(ws, ["order.*"], lastEventId=last_seen)
        assert ack["type"] == "subscribed" and ack["lastEventId"] == last_seen
        outbox_dispatch()  # the late publication of the unpublished ones arrives live too
        writer.join(60)
        sentinel = record("order.closed", user=user).id

        received, replay_done = [], None
        while True:
            message = recv(ws)
            if message["type"] == "replay_complete":
                replay_done = message
                continue
            assert message["type"] == "event"
            received.append(message["eventId"])
            if message["eventId"] == sentinel:
                break

    expected = [*missed, *unpublished, *during, sentinel]
    assert len(received) == len(set(received)), "duplicates delivered"
    assert set(received) == set(expected), "gap: events missing"
    assert replay_done is not None and replay_done["count"] >= len(missed) + len(unpublished)
    replayed = received[: replay_done["count"]]
    assert replayed == sorted(replayed)  # the replay is in ledger order
    assert replayed[: len(missed)] == missed


@pytest.mark.ledger_drift  # made-up order and trade events (no rows): a test of the event stream
def test_resume_beyond_the_replay_limit_is_refused_with_4413(ws_server, make_user, settings):
    settings.REALTIME_STREAM_REPLAY_LIMIT = 3
    user = make_user()
    first = record("order.accepted", user=user).id
    for _ in range(4):
        record("order.accepted", user=user)
    with ws_connect(ws_server, "/stream", token=make_token(user)) as ws:
        stream_subscribe(ws, ["order.*"], lastEventId=first)
        refusal = recv_until(ws, lambda m: m["type"] == "error")
        assert refusal["code"] == "replay_too_large"
        assert close_code(ws) == 4413


def test_bad_stream_requests_get_errors(ws_server, make_user, settings):
    settings.REALTIME_MAX_TOPICS = 2
    user = make_user()
    with ws_connect(ws_server, "/stream", token=make_token(user)) as ws:
        for message, code in [
            ({"type": "subscribe", "topics": "order.*"}, "invalid_topics"),
            ({"type": "subscribe", "topics": []}, "invalid_topics"),
            ({"type": "subscribe", "topics": ["order.*; DROP"]}, "invalid_topics"),
            ({"type": "subscribe", "topics": ["a.*", "b.*", "c.*"]}, "too_many_subscriptions"),
            ({"type": "subscribe", "topics": ["a.*"], "lastEventId": "nope"}, "invalid_last_event_id"),
            ({"type": "replay"}, "unknown_type"),
        ]:
            send(ws, message)
            reply = recv(ws)
            assert (reply["type"], reply["code"]) == ("error", code), message
        assert stream_subscribe(ws, ["a.*"])["type"] == "subscribed"
        again = stream_subscribe(ws, ["b.*"], lastEventId="01J0000000000000000000000A")
        assert again["code"] == "resume_not_first"
        send(ws, {"type": "unsubscribe", "topics": ["a.*"]})
        reply = recv(ws)
        assert (reply["type"], reply["topics"]) == ("unsubscribed", [])
