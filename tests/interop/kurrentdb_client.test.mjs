// Another service in Node.js, with KurrentDB's own client, against `ledger serve --grpc-listen`.
// Run by ./run (node --test), which starts the service over TLS and passes its addresses, its
// CA and the dev tokens in the environment; orders are placed over the HTTP API.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import {
  KurrentDBClient,
  jsonEvent,
  START,
  END,
  BACKWARDS,
  eventTypeFilter,
  StreamNotFoundError,
  WrongExpectedVersionError,
  AccessDeniedError,
} from "@kurrent/kurrentdb-client";

const { LEDGER_API, LEDGER_NODE, LEDGER_CA } = process.env;
// Longest a subscription may take to hand over what it should.
const WAIT_MS = 10_000;
// By name, as the certificate has it: Node.js will not send an IP address as the TLS server name.
const node = LEDGER_NODE.replace("127.0.0.1", "localhost");
const connect = (user) =>
  KurrentDBClient.connectionString(`kurrentdb://${user}:pw@${node}?tlsCAFile=${LEDGER_CA}`);
const reader = connect("subscriber");
const writer = connect("ledger");
after(() => Promise.all([reader.dispose(), writer.dispose()]));

async function command(path, tokenOf, body) {
  const answer = await fetch(LEDGER_API + path, {
    method: "POST",
    headers: { authorization: `Bearer ${process.env[tokenOf]}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.ok(answer.ok, `${path}: ${answer.status} ${await answer.clone().text()}`);
  return answer.json();
}

const placeOrder = () =>
  command("/orders", "BUYER_TOKEN", {
    seller_id: process.env.SELLER_ID,
    title: "A logo",
    price: "120.00",
    currency: "EUR",
    delivery_days: 5,
  });

const confirm = (orderId) => command(`/orders/${orderId}/confirm`, "SELLER_TOKEN", {});

async function collect(reads) {
  const events = [];
  for await (const resolved of reads) events.push(resolved.event);
  return events;
}

test("an order placed over HTTP is its stream, at the same position", async () => {
  const placed = await placeOrder();
  const events = await collect(reader.readStream(`order-${placed.order_id}`));
  assert.deepEqual(
    events.map((e) => [e.type, e.revision, e.position.commit]),
    [["OrderPlaced", 0n, BigInt(placed.position)]],
  );
  assert.equal(events[0].isJson, true);
  assert.equal(events[0].data.order_id, placed.order_id);
});

test("$all reads backwards as forwards reversed", async () => {
  await placeOrder();
  const forwards = (await collect(reader.readAll({ fromPosition: START }))).map((e) => e.position.commit);
  const backwards = (await collect(reader.readAll({ fromPosition: END, direction: BACKWARDS }))).map(
    (e) => e.position.commit,
  );
  assert.ok(forwards.length > 0);
  assert.deepEqual(backwards, [...forwards].reverse());
});

test("a client that discovers the node by gossip reads it", async () => {
  const placed = await placeOrder();
  const discovering = KurrentDBClient.connectionString(
    `kurrentdb+discover://subscriber:pw@${node}?tlsCAFile=${LEDGER_CA}`,
  );
  try {
    const events = await collect(discovering.readStream(`order-${placed.order_id}`));
    assert.deepEqual(events.map((e) => e.position.commit), [BigInt(placed.position)]);
  } finally {
    await discovering.dispose();
  }
});

test("a stream with no events is not found", async () => {
  await assert.rejects(collect(reader.readStream(`order-${randomUUID()}`)), StreamNotFoundError);
});

test("$all catches up, says so, then goes live", { timeout: WAIT_MS }, async () => {
  const placed = await placeOrder();
  const subscription = reader.subscribeToAll({
    fromPosition: START,
    filter: eventTypeFilter({ prefixes: ["Order"] }),
  });
  let confirmed;
  let caughtUpAfter;
  const seen = [];
  subscription.once("caughtUp", () => {
    caughtUpAfter = seen.length;
    confirmed = confirm(placed.order_id);
  });
  for await (const { event } of subscription) {
    seen.push(event);
    if (event.type === "OrderConfirmed" && event.streamId === `order-${placed.order_id}`) break;
  }
  await subscription.unsubscribe();
  const positions = seen.map((e) => e.position.commit);
  assert.deepEqual(positions, [...new Set(positions)].sort((a, b) => (a < b ? -1 : 1)));
  assert.ok(seen.every((e) => e.type.startsWith("Order")));
  assert.ok(positions.slice(0, caughtUpAfter).includes(BigInt(placed.position)));
  assert.equal(positions.at(-1), BigInt((await confirmed).position));
  assert.equal(caughtUpAfter, seen.length - 1, "only the confirmation arrives live");
});

test("a stream subscription from a revision gets what follows", { timeout: WAIT_MS }, async () => {
  const placed = await placeOrder();
  const subscription = reader.subscribeToStream(`order-${placed.order_id}`, { fromRevision: 0n });
  subscription.once("caughtUp", () => confirm(placed.order_id));
  const seen = [];
  for await (const { event } of subscription) {
    seen.push([event.type, event.revision]);
    if (event.type === "OrderConfirmed") break;
  }
  await subscription.unsubscribe();
  assert.deepEqual(seen, [["OrderConfirmed", 1n]]);
});

test("another application's stream keeps its expected revisions; a reader may not append", async () => {
  const stream = `audit-${randomUUID()}`;
  const event = jsonEvent({ type: "Noted", data: { n: 1 } });
  const first = await writer.appendToStream(stream, event, { streamState: "no_stream" });
  await assert.rejects(
    writer.appendToStream(stream, jsonEvent({ type: "Noted", data: {} }), { streamState: "no_stream" }),
    WrongExpectedVersionError,
  );
  // The same event again, as a retry after a lost answer: written once.
  const again = await writer.appendToStream(stream, event, { streamState: "any" });
  assert.equal(again.position.commit, first.position.commit);
  assert.deepEqual((await collect(reader.readStream(stream))).map((e) => e.data), [{ n: 1 }]);
  await assert.rejects(
    reader.appendToStream(stream, jsonEvent({ type: "Noted", data: {} })),
    AccessDeniedError,
  );
});
