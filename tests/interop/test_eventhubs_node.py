"""Node's @azure/event-hubs (its AMQP stack: rhea) against the emulator's Event Hub-compatible endpoint.

A device registered with azure-iot-hub sends telemetry with azure-iot-device (MQTT); then
tests/interop/eventhubs-node/read_events.mjs, an EventHubConsumerClient given only the Event
Hub-compatible connection string and the emulator's CA (NODE_EXTRA_CA_CERTS, as a user would),
reads the hub and partition metadata and the device's events, from the earliest position and
then resuming after a sequence number and after an offset, and prints what the SDK handed it as
JSON lines. The test compares them with what was sent. A wrong key must fail the script with
the hub's authorisation error.

Run through scripts/interop.sh, which starts the emulator and exports IOTHUB_EMULATOR_DIR (its
data dir: endpoints.json holds the ports, the CA file and the service connection string);
scripts/install-deps.sh installs the Node packages (npm ci in tests/interop/eventhubs-node).
The test also runs against an emulator on other ports: the SDK dials AMQPS 5671 unless the
connection string's Endpoint names a port or it is given a custom endpoint address (the test
tries both when endpoints.json names another port), and azure-iot-device dials MQTT 8883
hard-coded, so the test points paho's connect (under it) at the emulator's MQTT port when that
is not 8883.
"""

import json
import os
import shutil
import subprocess
import uuid
import warnings

import paho.mqtt.client as mqtt
import pytest
from azure.iot.device import IoTHubDeviceClient, Message
from azure.iot.hub import IoTHubRegistryManager

TIMEOUT = 30
NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "eventhubs-node")
SCRIPT = os.path.join(NODE_DIR, "read_events.mjs")
IOTHUB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "target", "debug", "iothub")


@pytest.fixture(scope="module")
def emulator():
    data_dir = os.environ.get("IOTHUB_EMULATOR_DIR")
    if not data_dir:
        pytest.fail("IOTHUB_EMULATOR_DIR is not set: run scripts/interop.sh")
    if not shutil.which("node"):
        pytest.fail("node is not installed")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@azure", "event-hubs")):
        pytest.fail("@azure/event-hubs is not installed: run scripts/install-deps.sh")
    with open(os.path.join(data_dir, "endpoints.json")) as f:
        endpoints = json.load(f)
    amqp = endpoints["amqp"]
    parts = dict(p.split("=", 1) for p in endpoints["serviceConnectionString"].split(";"))
    # What `iothub hub connection-string --default-eventhub` prints: the port in Endpoint when
    # it is not 5671 (the SDK reads it from there).
    eh_cs_with_port = subprocess.run(
        [IOTHUB, "hub", "--data-dir", data_dir, "connection-string", "--default-eventhub"],
        capture_output=True, text=True, check=True, timeout=TIMEOUT,
    ).stdout.strip()
    custom_endpoint, eh_cs = None, eh_cs_with_port
    if amqp["port"] != 5671:
        custom_endpoint = "amqps://%s:%d" % (amqp["eventHubHost"], amqp["port"])
        # Without the port, for the custom endpoint address.
        eh_cs = eh_cs_with_port.replace(":%d/" % amqp["port"], "/", 1)
    with open(endpoints["caFile"]) as f:
        ca_pem = f.read()
    return {
        "endpoints": endpoints,
        "host": endpoints["hostName"],
        "eh_cs": eh_cs,
        "eh_cs_with_port": eh_cs_with_port,
        "eh_name": amqp["eventHubName"],
        "key": parts["SharedAccessKey"],
        "custom_endpoint": custom_endpoint,
        "ca": endpoints["caFile"],
        "ca_pem": ca_pem,
        "mqtt_port": int(endpoints["mqttTls"].rpartition(":")[2]),
    }


@pytest.fixture(scope="module")
def registry(emulator):
    cs = emulator["endpoints"]["serviceConnectionString"]
    port = emulator["endpoints"]["https"].rpartition(":")[2]
    if port != "443":
        # The service SDK dials https://{HostName}; the emulator accepts tokens signed for host:port.
        cs = cs.replace("HostName=" + emulator["host"], "HostName=%s:%s" % (emulator["host"], port))
    os.environ["REQUESTS_CA_BUNDLE"] = emulator["ca"]
    return IoTHubRegistryManager.from_connection_string(cs)


@pytest.fixture
def device(emulator, registry, monkeypatch):
    """A registered device connected with azure-iot-device over MQTT."""
    if emulator["mqtt_port"] != 8883:
        connect = mqtt.Client.connect

        def to_emulator(self, host, port=1883, *args, **kwargs):
            return connect(self, host, emulator["mqtt_port"] if port == 8883 else port, *args, **kwargs)

        monkeypatch.setattr(mqtt.Client, "connect", to_emulator)
    device_id = "node-eh-" + uuid.uuid4().hex[:8]
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


def read_events(emulator, connection_string=None, custom_endpoint=True, **env):
    """Runs read_events.mjs; returns (exit code, JSON lines by kind, stderr). The endpoint's
    port goes in customEndpointAddress unless `custom_endpoint` is false (then the connection
    string must carry it)."""
    run_env = dict(os.environ)
    run_env.update(
        EVENTHUB_CONNECTION_STRING=connection_string or emulator["eh_cs"],
        NODE_EXTRA_CA_CERTS=emulator["ca"],
        EVENTHUB_TIMEOUT_MS=str(TIMEOUT * 1000),
    )
    if custom_endpoint and emulator["custom_endpoint"]:
        run_env["EVENTHUB_CUSTOM_ENDPOINT"] = emulator["custom_endpoint"]
    run_env.update({"EVENTHUB_" + k.upper(): str(v) for k, v in env.items()})
    done = subprocess.run(
        ["node", SCRIPT], cwd=NODE_DIR, env=run_env, capture_output=True, text=True, timeout=TIMEOUT + 30
    )
    if "closing did not finish" in done.stderr:
        # The SDK's close hung (see read_events.mjs): what was read still counts; say so.
        warnings.warn("@azure/event-hubs did not finish closing: %s" % done.stderr.strip())
    lines = {"hub": [], "partition": [], "event": []}
    for line in done.stdout.splitlines():
        record = json.loads(line)
        lines[record.pop("kind")].append(record)
    return done.returncode, lines, done.stderr


def telemetry(i):
    """The i-th message: JSON bodies, then one that is not JSON (the SDK hands it over as bytes)."""
    if i < 2:
        body, content_type = json.dumps({"temperature": 20.5 + i, "n": i}), "application/json"
    else:
        body, content_type = "plain text %d" % i, "text/plain"
    m = Message(body)
    m.content_type = content_type
    m.content_encoding = "utf-8"
    m.message_id = "msg-%d-%s" % (i, uuid.uuid4().hex[:6])
    m.custom_properties["color"] = ["red", "green", "blue"][i]
    m.custom_properties["n"] = str(i)
    return m


def test_node_consumer_reads_a_devices_telemetry(emulator, device):
    device_id, client = device
    sent = [telemetry(i) for i in range(3)]
    for m in sent:
        client.send_message(m)

    code, out, err = read_events(emulator, device_id=device_id, expect=len(sent))
    assert code == 0, err

    [hub] = out["hub"]
    assert hub["name"] == emulator["eh_name"]
    assert hub["partitionIds"] and all(isinstance(p, str) for p in hub["partitionIds"])
    assert sorted(p["partitionId"] for p in out["partition"]) == sorted(hub["partitionIds"])

    events = out["event"]
    assert len(events) == len(sent)
    [partition] = {e["partitionId"] for e in events}  # one device, one partition
    assert [e["body"] for e in events] == [
        {"temperature": 20.5, "n": 0},
        {"temperature": 21.5, "n": 1},
        "plain text 2",
    ]
    for e, m in zip(events, sent):
        assert e["properties"] == {"color": m.custom_properties["color"], "n": m.custom_properties["n"]}
        assert e["messageId"] == m.message_id
        assert e["contentType"] == m.content_type
        system = e["systemProperties"]
        assert system["contentType"] == m.content_type
        assert system["contentEncoding"] == "utf-8"
        assert system["iothub-connection-device-id"] == device_id
        assert system["iothub-message-source"] == "Telemetry"
        assert system["iothub-connection-auth-method"]
        assert system["iothub-enqueuedtime"]
        assert e["enqueuedTimeUtc"] and isinstance(e["offset"], str)
    sequence_numbers = [e["sequenceNumber"] for e in events]
    assert sequence_numbers == sorted(set(sequence_numbers)), sequence_numbers
    [props] = [p for p in out["partition"] if p["partitionId"] == partition]
    assert props["isEmpty"] is False
    assert props["lastEnqueuedSequenceNumber"] >= sequence_numbers[-1]

    # Resuming after the first event (the SDK's positions are exclusive by default), by sequence
    # number and by offset, on the device's partition: the other two, the same as before. The
    # second run takes the connection string as the CLI prints it, port included.
    for start, cs, custom in (
        ("sequence:%d" % events[0]["sequenceNumber"], emulator["eh_cs"], True),
        ("offset:%s" % events[0]["offset"], emulator["eh_cs_with_port"], False),
    ):
        code, out, err = read_events(
            emulator, cs, custom, device_id=device_id, partition=partition, start=start, expect=len(sent) - 1
        )
        assert code == 0, (start, err)
        assert [p["partitionId"] for p in out["partition"]] == [partition]
        assert out["event"] == events[1:], start


def test_a_wrong_key_fails_with_the_hubs_authorisation_error(emulator):
    wrong = emulator["eh_cs"].replace(emulator["key"], "eA" * 22)
    code, out, err = read_events(emulator, connection_string=wrong)
    assert code != 0
    assert out["hub"] == [] and out["event"] == []
    # The hub's refusal (401 on the management request) as the SDK types it, with the reason.
    assert "UnauthorizedError" in err, err
    assert "signature matches neither" in err, err
