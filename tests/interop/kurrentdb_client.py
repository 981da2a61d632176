"""Another service in Python, with KurrentDB's own client, against `ledger serve --grpc-listen`.

Run by `tests/interop/run`, which starts the service over TLS and passes its addresses,
its CA and the dev tokens in the environment. Orders are placed over the HTTP API, as the
marketplace does; the client sees them as a KurrentDB user would.
"""

import json
import os
import threading
import unittest
import urllib.request
import uuid

from kurrentdbclient import KurrentDBClient, NewEvent, StreamState
from kurrentdbclient.events import CaughtUp
from kurrentdbclient.exceptions import (
    AccessDeniedError,
    KurrentDBClientError,
    NotFoundError,
    WrongCurrentVersionError,
)

API = os.environ["LEDGER_API"]
NODE = os.environ["LEDGER_NODE"]
CA = open(os.environ["LEDGER_CA"]).read()
# Longest a subscription may take to hand over an event already appended.
WAIT_SECONDS = 10


def client(user: str) -> KurrentDBClient:
    return KurrentDBClient(uri=f"kurrentdb://{user}:pw@{NODE}", root_certificates=CA)


def command(path: str, token_of: str, body: dict) -> dict:
    request = urllib.request.Request(
        API + path,
        data=json.dumps(body).encode(),
        headers={
            "Authorization": "Bearer " + os.environ[token_of],
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=WAIT_SECONDS) as answer:
        return json.load(answer)


def place_order() -> dict:
    return command(
        "/orders",
        "BUYER_TOKEN",
        {
            "seller_id": os.environ["SELLER_ID"],
            "title": "A logo",
            "price": "120.00",
            "currency": "EUR",
            "delivery_days": 5,
        },
    )


def confirm(order_id: str) -> dict:
    return command(f"/orders/{order_id}/confirm", "SELLER_TOKEN", {})


def take(subscription, until, on_caught_up=None):
    """Reads `subscription` on a thread until `until(item)`; `on_caught_up` runs when the
    subscription says it has caught up (e.g. a command that should then arrive live).
    Returns what was read, the announcement included."""
    seen, failed = [], []

    def read():
        try:
            for item in subscription:
                seen.append(item)
                if isinstance(item, CaughtUp) and on_caught_up:
                    on_caught_up()
                if until(item):
                    return
        except Exception as failure:  # handed to the test's thread
            failed.append(failure)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(WAIT_SECONDS)
    waiting = reader.is_alive()
    subscription.stop()
    if failed and not waiting:
        raise failed[0]
    if waiting:
        raise AssertionError(f"still waiting after {WAIT_SECONDS} s; read {seen}")
    return seen


class Reading(unittest.TestCase):
    def test_an_order_placed_over_http_is_its_stream_at_the_same_position(self):
        placed = place_order()
        stream = "order-" + placed["order_id"]
        events = client("subscriber").get_stream(stream)
        self.assertEqual([e.type for e in events], ["OrderPlaced"])
        self.assertEqual(events[0].stream_position, 0)
        self.assertEqual(events[0].commit_position, placed["position"])
        self.assertEqual(json.loads(events[0].data)["order_id"], placed["order_id"])
        self.assertIsInstance(json.loads(events[0].metadata)["schema_version"], int)
        self.assertEqual(events[0].content_type, "application/json")

    def test_all_reads_forwards_and_backwards_in_one_order(self):
        place_order()
        reader = client("subscriber")
        forwards = [e.commit_position for e in reader.read_all()]
        self.assertGreater(len(forwards), 0)
        self.assertEqual(forwards, sorted(set(forwards)))
        backwards = [e.commit_position for e in reader.read_all(backwards=True)]
        self.assertEqual(backwards, forwards[::-1])
        self.assertEqual(reader.get_commit_position(), forwards[-1])

    def test_a_client_that_discovers_the_node_by_gossip_reads_it(self):
        placed = place_order()
        discovering = KurrentDBClient(
            uri=f"kurrentdb+discover://subscriber:pw@{NODE}", root_certificates=CA
        )
        events = discovering.get_stream("order-" + placed["order_id"])
        self.assertEqual([e.commit_position for e in events], [placed["position"]])

    def test_a_stream_with_no_events_is_not_found(self):
        with self.assertRaises(NotFoundError):
            client("subscriber").get_stream(f"order-{uuid.uuid4()}")


class Subscribing(unittest.TestCase):
    def test_all_catches_up_then_goes_live(self):
        placed = place_order()
        order = placed["order_id"]
        reader = client("subscriber")  # a client dropped cancels its subscriptions
        subscription = reader.subscribe_to_all(
            commit_position=0,
            filter_include=["Order"],
            filter_by_prefix=True,
            include_caught_up=True,
        )
        confirmed = {}
        seen = take(
            subscription,
            until=lambda e: e.type == "OrderConfirmed" and e.stream_name == "order-" + order,
            # Confirmed once the stored events are read: it can only arrive live.
            on_caught_up=lambda: confirmed.update(confirm(order)),
        )
        caught_up = [i for i, e in enumerate(seen) if isinstance(e, CaughtUp)]
        self.assertEqual(len(caught_up), 1, "one CaughtUp")
        stored = [e.commit_position for e in seen[: caught_up[0]]]
        self.assertIn(placed["position"], stored)
        self.assertEqual(seen[-1].commit_position, confirmed["position"])
        events = [e for e in seen if not isinstance(e, CaughtUp)]
        positions = [e.commit_position for e in events]
        self.assertEqual(positions, sorted(set(positions)), "in order, each once")
        self.assertTrue(all(e.type.startswith("Order") for e in events))


class Resuming(unittest.TestCase):
    def test_a_subscriber_resumes_after_the_last_position_it_saw(self):
        first = place_order()
        second = place_order()
        reader = client("subscriber")
        subscription = reader.subscribe_to_all(commit_position=first["position"])
        seen = take(subscription, until=lambda e: e.commit_position >= second["position"])
        self.assertGreater(seen[0].commit_position, first["position"])
        self.assertEqual(seen[-1].commit_position, second["position"])

    def test_a_stream_subscription_from_a_revision_gets_what_follows(self):
        placed = place_order()
        stream = "order-" + placed["order_id"]
        reader = client("subscriber")
        subscription = reader.subscribe_to_stream(
            stream, stream_position=0, include_caught_up=True
        )
        seen = take(
            subscription,
            until=lambda e: e.type == "OrderConfirmed",
            on_caught_up=lambda: confirm(placed["order_id"]),
        )
        events = [(e.type, e.stream_position) for e in seen if not isinstance(e, CaughtUp)]
        self.assertEqual(events, [("OrderConfirmed", 1)])


class Appending(unittest.TestCase):
    def test_a_reader_may_not_append(self):
        with self.assertRaises(AccessDeniedError):
            client("subscriber").append_to_stream(
                f"audit-{uuid.uuid4()}",
                current_version=StreamState.NO_STREAM,
                events=[NewEvent(type="Noted", data=b"{}")],
            )

    def test_another_applications_stream_keeps_its_expected_versions(self):
        writer = client("ledger")
        stream = f"audit-{uuid.uuid4()}"
        event = NewEvent(type="Noted", data=b'{"n":1}')
        position = writer.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=[event])
        with self.assertRaises(WrongCurrentVersionError):
            writer.append_to_stream(
                stream,
                current_version=StreamState.NO_STREAM,
                events=[NewEvent(type="Noted", data=b"{}")],
            )
        # The same event again, as a retry after a lost answer: written once.
        again = writer.append_to_stream(stream, current_version=StreamState.ANY, events=[event])
        self.assertEqual(again, position)
        stored = client("subscriber").get_stream(stream)
        self.assertEqual([(e.id, e.data) for e in stored], [(event.id, b'{"n":1}')])
        self.assertEqual(writer.get_current_version(stream), 0)

    def test_an_order_event_the_ledger_cannot_read_is_refused_whole(self):
        placed = place_order()
        stream = "order-" + placed["order_id"]
        unreadable = NewEvent(
            type="OrderConfirmed", data=b'{"at":"yesterday"}', metadata=b'{"schema_version":1}'
        )
        with self.assertRaisesRegex(KurrentDBClientError, "(?s)INVALID_ARGUMENT.*nothing was appended"):
            client("ledger").append_to_stream(stream, current_version=0, events=[unreadable])
        self.assertEqual(len(client("subscriber").get_stream(stream)), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
