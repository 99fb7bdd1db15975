"""Back ends unchanged against the emulator's AMQP surface (docs/amqp.md).

Official service clients, unchanged, against the emulator on its real AMQPS port (the Rust
tests in crates/iothub-emulator/tests/it/amqp_*.rs cover every refusal with fe2o3-amqp as the
client; tests/interop/test_eventhubs_node.py is the Node client):

- azure-eventhub (Python, its own AMQP stack "pyamqp") reads the Event Hub-compatible
  endpoint: metadata, from the start, from @latest, resuming from an offset and from a sequence
  number, with the device's body, application properties and the hub's annotations; and the
  same over AMQP over WebSockets on the HTTPS port;
- the conversion of an IoT Hub connection string through the redirect, as Microsoft's
  "read device-to-cloud messages" sample does it (uamqp, which azure-iot-hub brings);
- azure-iot-hub's send_c2d_message (uamqp) reaching a device connected with azure-iot-device;
- refusals the SDKs surface: a wrong key, an unknown consumer group.

Run through scripts/interop.sh (the emulator on its real ports: the SDKs hard-code 5671).
"""

import json
import logging
import os
import subprocess
import queue
import threading
import time
import uuid
from base64 import b64decode, b64encode
from hashlib import sha256
from hmac import HMAC
from urllib.parse import quote_plus, urlencode

import pytest
from azure.eventhub import EventHubConsumerClient
from azure.iot.device import IoTHubDeviceClient, Message
from azure.iot.hub import IoTHubRegistryManager

TIMEOUT = 30
IOTHUB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "target", "debug", "iothub")


def default_eventhub_connection_string(data_dir):
    """The Event Hub-compatible connection string, as a user gets it: from the CLI."""
    return subprocess.run(
        [IOTHUB, "hub", "--data-dir", data_dir, "connection-string", "--default-eventhub"],
        capture_output=True, text=True, check=True, timeout=TIMEOUT,
    ).stdout.strip()


@pytest.fixture(scope="module")
def emulator():
    data_dir = os.environ.get("IOTHUB_EMULATOR_DIR")
    if not data_dir:
        pytest.fail("IOTHUB_EMULATOR_DIR is not set: run scripts/interop.sh")
    with open(os.path.join(data_dir, "endpoints.json")) as f:
        endpoints = json.load(f)
    amqp = endpoints["amqp"]
    if amqp.get("port") != 5671:
        pytest.skip("the AMQP SDKs need the emulator on port 5671")
    service_cs = endpoints["serviceConnectionString"]
    parts = dict(p.split("=", 1) for p in service_cs.split(";"))
    eh_cs = default_eventhub_connection_string(data_dir)
    # uamqp (azure-iot-hub) reads the trust store from SSL_CERT_FILE.
    os.environ["SSL_CERT_FILE"] = endpoints["caFile"]
    with open(endpoints["caFile"]) as f:
        ca_pem = f.read()
    return {
        "host": endpoints["hostName"],
        "service_cs": service_cs,
        "eh_cs": eh_cs,
        "eh_name": amqp["eventHubName"],
        "ca": endpoints["caFile"],
        "ca_pem": ca_pem,
        "key": parts["SharedAccessKey"],
        "policy": parts["SharedAccessKeyName"],
        "https": endpoints.get("https"),
    }


@pytest.fixture(scope="module")
def registry(emulator):
    cs = emulator["service_cs"]
    host, _, port = (emulator["https"] or ":443").rpartition(":")
    if port != "443":
        cs = cs.replace("HostName=" + emulator["host"], "HostName=%s:%s" % (emulator["host"], port))
    os.environ["REQUESTS_CA_BUNDLE"] = emulator["ca"]
    return IoTHubRegistryManager.from_connection_string(cs)


@pytest.fixture
def device(emulator, registry):
    """A registered device sending over MQTT with azure-iot-device."""
    device_id = "amqp-" + uuid.uuid4().hex[:8]
    created = registry.create_device_with_sas(device_id, None, None, "enabled")
    key = created.authentication.symmetric_key.primary_key
    client = IoTHubDeviceClient.create_from_connection_string(
        "HostName=%s;DeviceId=%s;SharedAccessKey=%s" % (emulator["host"], device_id, key),
        server_verification_cert=emulator["ca_pem"],
    )
    client.connect()
    yield device_id, client
    client.shutdown()
    registry.delete_device(device_id)


def send(client, body, **props):
    m = Message(body)
    m.content_type = "application/json"
    m.content_encoding = "utf-8"
    m.message_id = str(uuid.uuid4())
    for k, v in props.items():
        m.custom_properties[k] = v
    client.send_message(m)
    return m.message_id


def consumer(emulator, **kw):
    return EventHubConsumerClient.from_connection_string(
        emulator["eh_cs"], consumer_group=kw.pop("consumer_group", "$Default"), connection_verify=emulator["ca"], **kw
    )


def read(emulator, partition, count, until=None, client_kw=None, **receive_kw):
    """Receives `count` events (matching `until`, if given) from one partition, or fails."""
    client = consumer(emulator, consumer_group=receive_kw.pop("consumer_group", "$Default"), **(client_kw or {}))
    got, errors = [], []
    done = threading.Event()

    def on_event(_ctx, event):
        if event is None:
            return
        if until is None or until(event):
            got.append(event)
        if len(got) >= count:
            done.set()

    def on_error(_ctx, error):
        errors.append(error)
        done.set()

    worker = threading.Thread(
        target=client.receive,
        kwargs=dict(on_event=on_event, on_error=on_error, partition_id=partition, max_wait_time=1, **receive_kw),
        daemon=True,
    )
    worker.start()
    done.wait(TIMEOUT)
    client.close()
    worker.join(10)
    return got, errors


def last_sequence_numbers(emulator):
    with consumer(emulator) as c:
        return {
            p: c.get_partition_properties(p)["last_enqueued_sequence_number"]
            for p in c.get_eventhub_properties()["partition_ids"]
        }


def partition_that_grows(emulator, sending):
    """Runs `sending` and returns the one partition whose last sequence number moved."""
    before = last_sequence_numbers(emulator)
    sending()
    time.sleep(0.5)
    after = last_sequence_numbers(emulator)
    grown = [p for p in before if after[p] != before[p]]
    assert len(grown) == 1, (before, after)
    return grown[0]


def test_metadata_and_reading_from_the_start_and_from_latest(emulator, device):
    device_id, client = device
    with consumer(emulator) as c:
        props = c.get_eventhub_properties()
        assert props["eventhub_name"] == emulator["eh_name"]
        assert props["partition_ids"] == ["0", "1", "2", "3"]
        before = {p: c.get_partition_properties(p) for p in props["partition_ids"]}
    mid = send(client, '{"t":1}', color="red")
    # Which partition grew is the device's partition.
    time.sleep(0.5)
    with consumer(emulator) as c:
        after = {p: c.get_partition_properties(p) for p in before}
    grown = [p for p in before if after[p]["last_enqueued_sequence_number"] != before[p]["last_enqueued_sequence_number"]]
    assert len(grown) == 1, (before, after)
    partition = grown[0]
    assert after[partition]["is_empty"] is False

    mine = lambda e: e.system_properties.get(b"iothub-connection-device-id") == device_id.encode()
    events, errors = read(emulator, partition, 1, until=mine, starting_position="-1")
    assert not errors, errors
    event = events[0]
    assert event.body_as_str() == '{"t":1}'
    assert event.properties[b"color"] == b"red"
    assert event.system_properties[b"message-id"] == mid.encode()
    assert event.system_properties[b"iothub-message-source"] == b"Telemetry"
    assert event.system_properties[b"content-type"] == b"application/json"
    assert event.sequence_number == after[partition]["last_enqueued_sequence_number"]
    assert event.enqueued_time is not None

    # @latest: only what comes after the receiver starts.
    results = {}

    def later():
        results["latest"] = read(emulator, partition, 1, until=mine, starting_position="@latest")

    reader = threading.Thread(target=later)
    reader.start()
    time.sleep(3)
    send(client, '{"t":2}')
    reader.join(TIMEOUT + 15)
    events, errors = results["latest"]
    assert not errors, errors
    assert events[0].body_as_str() == '{"t":2}'


def test_amqp_over_websockets_on_the_https_port(emulator, device):
    """TransportType.AmqpOverWebsocket: the same client over wss://{host}:443/$servicebus/websocket
    (subprotocol AMQPWSB10), which the emulator serves beside MQTT over WebSockets."""
    from azure.eventhub import TransportType

    if (emulator["https"] or "").rpartition(":")[2] != "443":
        pytest.skip("the SDK dials 443 for AMQP over WebSockets")
    device_id, client = device
    partition = partition_that_grows(emulator, lambda: send(client, '{"ws":1}'))
    with consumer(emulator, transport_type=TransportType.AmqpOverWebsocket) as c:
        assert c.get_eventhub_properties()["partition_ids"] == ["0", "1", "2", "3"]
    mine = lambda e: e.system_properties.get(b"iothub-connection-device-id") == device_id.encode()
    events, errors = read(
        emulator, partition, 1, until=mine, starting_position="-1",
        client_kw={"transport_type": TransportType.AmqpOverWebsocket},
    )
    assert not errors, errors
    assert events[0].body_as_str() == '{"ws":1}'


def test_resuming_from_an_offset_and_a_sequence_number(emulator, device):
    device_id, client = device
    partition = partition_that_grows(emulator, lambda: [send(client, '{"n":%d}' % i) for i in range(3)])
    mine = lambda e: e.system_properties.get(b"iothub-connection-device-id") == device_id.encode()
    events, errors = read(emulator, partition, 3, until=mine, starting_position="-1")
    assert not errors, errors
    assert [e.body_as_str() for e in events] == ['{"n":0}', '{"n":1}', '{"n":2}']
    # From the first event's offset (exclusive): the second comes next.
    resumed, errors = read(emulator, partition, 1, until=mine, starting_position=events[0].offset)
    assert not errors, errors
    assert resumed[0].body_as_str() == '{"n":1}'
    # From the second's sequence number, inclusive: the second again.
    resumed, errors = read(
        emulator, partition, 1, until=mine, starting_position=events[1].sequence_number, starting_position_inclusive=True
    )
    assert not errors, errors
    assert resumed[0].body_as_str() == '{"n":1}'


def _sas(uri, key, policy, expiry_s=3600):
    """A SAS token the way Microsoft's samples make one."""
    ttl = int(time.time() + expiry_s)
    sign_key = "%s\n%d" % (quote_plus(uri), ttl)
    signature = b64encode(HMAC(b64decode(key), sign_key.encode("utf-8"), sha256).digest())
    return "SharedAccessSignature " + urlencode(
        {"sr": uri, "sig": signature, "se": str(ttl), "skn": policy}
    )


def test_the_iot_hub_connection_string_converts_through_the_redirect(emulator, device):
    """Microsoft's sample: attach to the hub's messages/events with SASL PLAIN, catch the
    redirect, build the Event Hub connection string from it, read with azure-eventhub."""
    from uamqp import ReceiveClient
    from uamqp.authentication import SASLPlain
    from uamqp.errors import LinkRedirect

    host, policy, key = emulator["host"], emulator["policy"], emulator["key"]
    username = "%s@sas.root.%s" % (policy, host.split(".")[0])
    token = _sas(host, key, policy)
    uri = "amqps://%s:%s@%s:5671/messages/events/ConsumerGroups/$Default/Partitions/0" % (
        quote_plus(username),
        quote_plus(token),
        host,
    )
    # Timeouts in ms: a client that hears nothing fails the test instead of waiting forever.
    receiver = ReceiveClient(uri, auth=SASLPlain(host, username, token), timeout=TIMEOUT * 1000)
    try:
        receiver.receive_message_batch(max_batch_size=1, timeout=TIMEOUT * 1000)
        pytest.fail("no redirect")
    except LinkRedirect as redirect:
        fqdn = redirect.hostname.decode("utf-8")
        address = redirect.address.decode("utf-8")
        entity = address.split("/")[3]
    finally:
        receiver.close()
    assert entity == emulator["eh_name"]
    converted = "Endpoint=sb://%s/;SharedAccessKeyName=%s;SharedAccessKey=%s;EntityPath=%s" % (fqdn, policy, key, entity)
    with EventHubConsumerClient.from_connection_string(
        converted, consumer_group="$Default", connection_verify=emulator["ca"]
    ) as c:
        assert c.get_eventhub_properties()["eventhub_name"] == entity


def test_send_c2d_message_reaches_the_device(emulator, registry, device):
    device_id, client = device
    received = queue.Queue()
    client.on_message_received = received.put
    registry.send_c2d_message(device_id, "hello from the back end", properties={"color": "blue"})
    message = received.get(timeout=TIMEOUT)
    assert message.data == b"hello from the back end"
    assert message.custom_properties["color"] == "blue"


def test_refusals_reach_the_sdk(emulator, caplog):
    bad = emulator["eh_cs"].replace(emulator["key"], b64encode(b"x" * 32).decode())
    with pytest.raises(Exception) as caught:
        with EventHubConsumerClient.from_connection_string(
            bad, consumer_group="$Default", connection_verify=emulator["ca"], retry_total=0
        ) as c:
            c.get_eventhub_properties()
    assert "signature" in str(caught.value).lower() or "unauthorized" in str(caught.value).lower()

    # An unknown consumer group: the emulator detaches the receiver with amqp:not-found naming
    # the group (docs/amqp.md). azure-eventhub 5.15 does not hand a receiver's detach error to
    # on_error (it reopens the link on every receive cycle until closed), so the refusal is
    # read where the SDK reports it: its AMQP trace.
    caplog.set_level(logging.DEBUG, logger="azure.eventhub")
    client = consumer(emulator, consumer_group="nosuchgroup", logging_enable=True)
    worker = threading.Thread(
        target=client.receive,
        kwargs=dict(on_event=lambda _c, _e: None, partition_id="0", max_wait_time=1, starting_position="-1"),
        daemon=True,
    )
    worker.start()
    deadline = time.monotonic() + TIMEOUT
    refusal = None
    while refusal is None and time.monotonic() < deadline:
        time.sleep(0.2)
        refusal = next((r.getMessage() for r in caplog.records if "amqp:not-found" in r.getMessage()), None)
    client.close()
    worker.join(10)
    assert refusal is not None, "no detach with amqp:not-found in the SDK's trace"
    assert "nosuchgroup" in refusal, refusal
