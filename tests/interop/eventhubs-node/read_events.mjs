// Reads an Event Hub-compatible endpoint with @azure/event-hubs, as a Node back end would, and
// prints what the SDK hands its caller as JSON lines on stdout (tests/interop/test_eventhubs_node.py
// compares them with what a device sent):
//   {"kind":"hub", "name", "partitionIds", "createdOn"}            getEventHubProperties()
//   {"kind":"partition", "partitionId", "beginningSequenceNumber", "lastEnqueuedSequenceNumber",
//    "lastEnqueuedOffset", "lastEnqueuedOnUtc", "isEmpty"}          getPartitionProperties(id), each
//   {"kind":"event", "partitionId", "body", "properties", "systemProperties", "sequenceNumber",
//    "offset", "enqueuedTimeUtc", "contentType", "messageId", "correlationId"}
// It exits 0 once it has printed EVENTHUB_EXPECT events, 1 with the error on stderr on any error
// the SDK reports (it retries once, so a refusal fails fast) or after EVENTHUB_TIMEOUT_MS,
// closing the client first (at most CLOSE_TIMEOUT_MS; a close that does not finish is
// reported on stderr and does not change the exit code).
//
// Environment:
//   EVENTHUB_CONNECTION_STRING  Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…;EntityPath=…
//   NODE_EXTRA_CA_CERTS         the emulator's CA (Node reads it at start-up; the SDK's TLS
//                               connection, rhea's tls.connect, uses Node's default trust store)
//   EVENTHUB_CUSTOM_ENDPOINT    optional, e.g. amqps://127.0.0.1:25671: the SDK dials 5671 otherwise
//   EVENTHUB_CONSUMER_GROUP     default $Default
//   EVENTHUB_PARTITION          optional: read this partition only (required by sequence:/offset:)
//   EVENTHUB_START              earliest (default) | latest | sequence:N | offset:X (both exclusive,
//                               as the SDK's default isInclusive: false)
//   EVENTHUB_DEVICE_ID          optional: count and print only this device's events
//   EVENTHUB_EXPECT             events to wait for (default 1)
//   EVENTHUB_TIMEOUT_MS         default 30000
import { EventHubConsumerClient, earliestEventPosition, latestEventPosition } from "@azure/event-hubs";

const env = process.env;
const connectionString = env.EVENTHUB_CONNECTION_STRING;
if (!connectionString) {
  console.error("read_events: EVENTHUB_CONNECTION_STRING is not set");
  process.exit(2);
}
const consumerGroup = env.EVENTHUB_CONSUMER_GROUP || "$Default";
const partition = env.EVENTHUB_PARTITION || undefined;
const deviceId = env.EVENTHUB_DEVICE_ID || undefined;
const expect = Number(env.EVENTHUB_EXPECT || "1");
const timeoutMs = Number(env.EVENTHUB_TIMEOUT_MS || "30000");

function startPosition(spec) {
  if (!spec || spec === "earliest") return earliestEventPosition;
  if (spec === "latest") return latestEventPosition;
  const [kind, value] = [spec.slice(0, spec.indexOf(":")), spec.slice(spec.indexOf(":") + 1)];
  if (kind === "sequence") return { sequenceNumber: Number(value) };
  if (kind === "offset") return { offset: value };
  throw new Error(`EVENTHUB_START: unknown start position ${spec}`);
}

// JSON for what the SDK returns: Buffers (a body that is not JSON, binary annotations) as UTF-8
// text, Dates as ISO strings, so the test compares plain values.
function plain(value) {
  if (value === null || value === undefined) return value ?? null;
  if (value instanceof Uint8Array) return Buffer.from(value).toString("utf8");
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

const print = (line) => process.stdout.write(JSON.stringify(plain(line)) + "\n");

// How long finish() waits for the SDK to close before exiting anyway.
const CLOSE_TIMEOUT_MS = 5000;

let client;
let subscription;
let done = false;

async function finish(code, error) {
  if (done) return;
  done = true;
  if (error) {
    // AggregateError (every address of a host refused) carries its reasons in .errors.
    const describe = (e) => `${e.code ?? e.name ?? "Error"}: ${e.message}`;
    const reasons = (error.errors ?? []).map((e) => ` [${describe(e)}]`).join("");
    console.error(`read_events: ${describe(error)}${reasons}`);
  }
  clearTimeout(timer);
  // Closing is bounded: rhea-promise's Connection.close() never settles when the socket
  // reports "disconnected" before the peer's close frame is read (it removes its listeners
  // without resolving), and what this script reports was decided before closing.
  const closing = (async () => {
    await subscription?.close();
    await client?.close();
  })().then(
    () => true,
    (closeError) => {
      console.error(`read_events: closing: ${closeError.message}`);
      return true;
    },
  );
  const bound = new Promise((resolve) => setTimeout(() => resolve(false), CLOSE_TIMEOUT_MS).unref());
  if (!(await Promise.race([closing, bound]))) {
    console.error(`read_events: closing did not finish within ${CLOSE_TIMEOUT_MS} ms`);
  }
  process.exit(code);
}

const timer = setTimeout(
  () => finish(1, new Error(`timed out after ${timeoutMs} ms waiting for ${expect} events`)),
  timeoutMs,
);

try {
  const start = startPosition(env.EVENTHUB_START);
  if ((start.sequenceNumber !== undefined || (start.offset && start.offset !== "-1" && start.offset !== "@latest")) && !partition) {
    throw new Error("EVENTHUB_START sequence:/offset: needs EVENTHUB_PARTITION");
  }
  const options = {
    // One retry, short: a refused token or an unknown consumer group should fail the run in
    // seconds rather than after the SDK's default 3 retries of 60 s operations.
    retryOptions: { maxRetries: 1, retryDelayInMs: 200, timeoutInMs: 10000 },
  };
  if (env.EVENTHUB_CUSTOM_ENDPOINT) options.customEndpointAddress = env.EVENTHUB_CUSTOM_ENDPOINT;
  client = new EventHubConsumerClient(consumerGroup, connectionString, options);

  const hub = await client.getEventHubProperties();
  print({ kind: "hub", name: hub.name, partitionIds: hub.partitionIds, createdOn: hub.createdOn });
  for (const id of partition ? [partition] : hub.partitionIds) {
    const p = await client.getPartitionProperties(id);
    print({
      kind: "partition",
      partitionId: p.partitionId,
      beginningSequenceNumber: p.beginningSequenceNumber,
      lastEnqueuedSequenceNumber: p.lastEnqueuedSequenceNumber,
      lastEnqueuedOffset: p.lastEnqueuedOffset,
      lastEnqueuedOnUtc: p.lastEnqueuedOnUtc,
      isEmpty: p.isEmpty,
    });
  }

  let received = 0;
  const handlers = {
    async processEvents(events, context) {
      for (const e of events) {
        if (done || received >= expect) return;
        if (deviceId && e.systemProperties?.["iothub-connection-device-id"] !== deviceId) continue;
        received += 1;
        print({
          kind: "event",
          partitionId: context.partitionId,
          body: e.body,
          properties: e.properties ?? {},
          systemProperties: e.systemProperties ?? {},
          sequenceNumber: e.sequenceNumber,
          offset: e.offset,
          enqueuedTimeUtc: e.enqueuedTimeUtc,
          contentType: e.contentType ?? null,
          messageId: e.messageId ?? null,
          correlationId: e.correlationId ?? null,
        });
      }
      if (received >= expect) await finish(0);
    },
    async processError(error, context) {
      // Any error is the test's failure: the emulator should give the SDK nothing to retry.
      await finish(1, Object.assign(error, { message: `${error.message} (partition ${context.partitionId ?? "-"})` }));
    },
  };
  const subscribeOptions = { startPosition: start, maxBatchSize: 50, maxWaitTimeInSeconds: 1 };
  subscription = partition
    ? client.subscribe(partition, handlers, subscribeOptions)
    : client.subscribe(handlers, subscribeOptions);
} catch (error) {
  await finish(1, error);
}
