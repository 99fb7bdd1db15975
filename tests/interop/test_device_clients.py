"""Unmodified device clients against the emulator: mosquitto_pub/sub with the argument shapes of
Microsoft's IoT MQTT Samples, paho-mqtt over TLS and over WebSockets, and the official
azure-iot-device SDK (telemetry, C2D, twin get/patch, desired patches, methods, DPS).

Run through scripts/interop.sh (it starts `iothub emulator` and exports IOTHUB_EMULATOR_DIR).
Identities are made with `iothub hub identity create`, tokens with `iothub sas`, and the
service side is driven with `iothub hub c2d|invoke|twin update`, so every test goes through
the real binaries. Telemetry is checked in the emulator's durable event log as the service API
reads it back (`GET /events`, with every property the hub stamped), so a test fails when the
emulator acknowledges without storing or stamps the wrong thing.
"""

import base64
import json
import os
import queue
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid

import paho.mqtt.client as mqtt
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IOTHUB = os.path.join(ROOT, "target", "debug", "iothub")
TIMEOUT = 20


@pytest.fixture(scope="module")
def emu():
    data_dir = os.environ.get("IOTHUB_EMULATOR_DIR")
    if not data_dir:
        pytest.fail("IOTHUB_EMULATOR_DIR is not set: run scripts/interop.sh")
    with open(os.path.join(data_dir, "endpoints.json")) as f:
        endpoints = json.load(f)
    return {
        "dir": data_dir,
        "host": endpoints["hostName"],
        "tls_port": int(endpoints["mqttTls"].rpartition(":")[2]),
        "https_port": int(endpoints["https"].rpartition(":")[2]),
        "ca": endpoints["caFile"],
        "http": endpoints["http"],
        "service": endpoints["serviceConnectionString"],
    }


def iothub(emu, *args, check=True):
    run = subprocess.run(
        [IOTHUB, *args, "--data-dir", emu["dir"]] if args[0] == "hub" else [IOTHUB, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and run.returncode != 0:
        raise AssertionError("iothub %s failed (%s): %s" % (" ".join(args), run.returncode, run.stderr))
    return run


def new_device(emu):
    device_id = "interop-" + uuid.uuid4().hex[:8]
    cs = iothub(emu, "hub", "identity", "create", device_id).stdout.strip()
    token = iothub(emu, "sas", "--connection-string", cs, "--duration", "3600").stdout.strip()
    return device_id, cs, token


def stored_events(emu, device_id):
    """`device_id`'s messages in the event log: (body, system properties, application properties)."""
    token = iothub(emu, "sas", "--connection-string", emu["service"], "--duration", "600").stdout.strip()
    url = "http://%s/events?device=%s&limit=1000" % (emu["http"], urllib.parse.quote(device_id))
    request = urllib.request.Request(url, headers={"Authorization": token})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        events = json.load(response)["events"]
    return [
        (base64.b64decode(e["body"]), e["systemProperties"], e["applicationProperties"])
        for e in events
    ]


def username(emu, device_id):
    return "%s/%s/?api-version=2021-04-12" % (emu["host"], device_id)


# ---- mosquitto -------------------------------------------------------------------------


def test_mosquitto_pub_telemetry_with_retain_is_stored_with_mqtt_retain(emu):
    device_id, _, token = new_device(emu)
    run = subprocess.run(
        ["mosquitto_pub", "-d", "-q", "1", "-r", "-h", emu["host"], "-p", str(emu["tls_port"]),
         "-i", device_id, "-u", username(emu, device_id), "-P", token,
         "-t", "devices/%s/messages/events/" % device_id, "-m", '{"id":123}',
         "--cafile", emu["ca"], "-V", "mqttv311"],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert run.returncode == 0, run.stderr + run.stdout
    assert "received PUBACK" in run.stdout
    events = stored_events(emu, device_id)
    assert len(events) == 1
    body, system, app = events[0]
    assert body == b'{"id":123}'
    assert system["iothub-connection-device-id"] == device_id
    assert app["mqtt-retain"] == "true"


def test_mosquitto_with_a_wrong_token_is_refused(emu):
    device_id, _, token = new_device(emu)
    bad = token.replace("sig=", "sig=x", 1)
    run = subprocess.run(
        ["mosquitto_pub", "-q", "1", "-h", emu["host"], "-p", str(emu["tls_port"]),
         "-i", device_id, "-u", username(emu, device_id), "-P", bad,
         "-t", "devices/%s/messages/events/" % device_id, "-m", "x", "--cafile", emu["ca"], "-V", "mqttv311"],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert run.returncode != 0
    assert stored_events(emu, device_id) == []


def test_mosquitto_sub_on_hash_receives_c2d(emu):
    device_id, _, token = new_device(emu)
    sub = subprocess.Popen(
        ["mosquitto_sub", "-v", "-q", "1", "-c", "-C", "1", "-W", str(TIMEOUT), "-h", emu["host"],
         "-p", str(emu["tls_port"]), "-i", device_id, "-u", username(emu, device_id), "-P", token,
         "-t", "#", "--cafile", emu["ca"], "-V", "mqttv311"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # The subscription must exist before the message is sent (docs/protocol.md §5).
    deadline = time.time() + TIMEOUT
    sent = False
    while time.time() < deadline and not sent:
        time.sleep(0.3)
        sent = iothub(emu, "hub", "c2d", device_id, "hello world", "-p", "property1=value 1", check=False).returncode == 0
    assert sent
    out, err = sub.communicate(timeout=TIMEOUT + 5)
    assert sub.returncode == 0, err
    topic, _, payload = out.strip().partition(" ")
    assert topic.startswith("devices/%s/messages/devicebound/" % device_id)
    assert "%24.to=%2Fdevices%2F" + device_id + "%2Fmessages%2Fdevicebound" in topic
    assert "property1=value%201" in topic
    assert payload == "hello world"


# ---- paho -------------------------------------------------------------------------------


def paho_client(emu, device_id, token, transport="tcp"):
    client = mqtt.Client(client_id=device_id, clean_session=False, protocol=mqtt.MQTTv311, transport=transport)
    client.username_pw_set(username(emu, device_id), token)
    client.tls_set(ca_certs=emu["ca"], tls_version=ssl.PROTOCOL_TLS_CLIENT)
    if transport == "websockets":
        client.ws_set_options(path="/$iothub/websocket")
    inbox = queue.Queue()
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc: (inbox.put(("connack", rc)), connected.set())
    client.on_message = lambda c, u, m: inbox.put((m.topic, m.payload))
    return client, inbox


def twin_round_trip(client, inbox):
    client.subscribe("$iothub/twin/res/#", qos=1)
    time.sleep(0.5)
    client.publish("$iothub/twin/PATCH/properties/reported/?$rid=0", '{"temperature":32}', qos=1)
    topic, payload = inbox.get(timeout=TIMEOUT)
    assert topic == "$iothub/twin/res/204/?$rid=0&$version=2"
    assert payload == b""
    client.publish("$iothub/twin/GET/?$rid=1", "", qos=1)
    topic, payload = inbox.get(timeout=TIMEOUT)
    assert topic == "$iothub/twin/res/200/?$rid=1"
    assert json.loads(payload) == {"desired": {"$version": 1}, "reported": {"temperature": 32, "$version": 2}}


def test_paho_over_tls_twin_matches_the_seed_output(emu):
    device_id, _, token = new_device(emu)
    client, inbox = paho_client(emu, device_id, token)
    client.connect(emu["host"], emu["tls_port"], keepalive=60)
    client.loop_start()
    try:
        assert inbox.get(timeout=TIMEOUT) == ("connack", 0)
        twin_round_trip(client, inbox)
        info = client.publish("devices/%s/messages/events/$.ct=application%%2Fjson&$.ce=utf-8" % device_id, '{"t":1}', qos=1)
        info.wait_for_publish(timeout=TIMEOUT)
        assert info.is_published()
        _, system, _ = stored_events(emu, device_id)[0]
        assert system["content-type"] == "application/json"
    finally:
        client.loop_stop()
        client.disconnect()


def test_paho_over_websockets_twin_matches_the_seed_output(emu):
    device_id, _, token = new_device(emu)
    client, inbox = paho_client(emu, device_id, token, transport="websockets")
    client.connect(emu["host"], emu["https_port"], keepalive=60)
    client.loop_start()
    try:
        assert inbox.get(timeout=TIMEOUT) == ("connack", 0)
        twin_round_trip(client, inbox)
    finally:
        client.loop_stop()
        client.disconnect()


# ---- azure-iot-device -------------------------------------------------------------------


def sdk_client(emu, cs, websockets=False):
    from azure.iot.device import IoTHubDeviceClient

    with open(emu["ca"]) as f:
        ca = f.read()
    return IoTHubDeviceClient.create_from_connection_string(cs, server_verification_cert=ca, websockets=websockets)


@pytest.mark.skipif(os.geteuid() != 0, reason="the SDK dials 8883/443 only: needs the emulator on the real ports")
def test_azure_iot_device_telemetry_c2d_twin_desired_and_methods(emu):
    from azure.iot.device import Message, MethodResponse

    device_id, cs, _ = new_device(emu)
    client = sdk_client(emu, cs)
    c2d, desired, = queue.Queue(), queue.Queue()
    client.on_message_received = c2d.put
    client.on_twin_desired_properties_patch_received = desired.put

    def on_method(request):
        client.send_method_response(MethodResponse.create_from_method_request(request, 200, {"echo": request.payload}))

    client.on_method_request_received = on_method
    client.connect()
    try:
        msg = Message('{"temperature":21.5}', message_id="mid-1", content_encoding="utf-8", content_type="application/json")
        msg.custom_properties["alert"] = "true"
        client.send_message(msg)
        _, system, app = stored_events(emu, device_id)[0]
        assert system["message-id"] == "mid-1" and app["alert"] == "true"

        client.patch_twin_reported_properties({"temperature": 32})
        twin = client.get_twin()
        assert twin["reported"]["temperature"] == 32

        iothub(emu, "hub", "twin", "update", device_id, "--desired", '{"targetTemperature":23}')
        patch = desired.get(timeout=TIMEOUT)
        assert patch["targetTemperature"] == 23 and "$version" in patch

        iothub(emu, "hub", "c2d", device_id, "hello", "-p", "color=red")
        received = c2d.get(timeout=TIMEOUT)
        assert received.data == b"hello" and received.custom_properties["color"] == "red"

        run = iothub(emu, "--json", "hub", "invoke", device_id, "reboot", "--payload", '{"delay":1}')
        result = json.loads(run.stdout)
        assert result["status"] == 200 and result["payload"] == {"echo": {"delay": 1}}
    finally:
        client.shutdown()


@pytest.mark.skipif(os.geteuid() != 0, reason="the SDK dials 8883 only: needs the emulator on the real ports")
def test_azure_iot_device_provisioning_assigns_and_connects(emu):
    from azure.iot.device import ProvisioningDeviceClient

    registration_id = "dps-" + uuid.uuid4().hex[:8]
    created = json.loads(iothub(emu, "--json", "hub", "enrollment", "create", registration_id).stdout)
    key = created["attestation"]["symmetricKey"]["primaryKey"]
    with open(emu["ca"]) as f:
        ca = f.read()
    prov = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=emu["host"], registration_id=registration_id, id_scope=created["idScope"],
        symmetric_key=key, server_verification_cert=ca,
    )
    result = prov.register()
    assert result.status == "assigned"
    assert result.registration_state.device_id == registration_id
    cs = "HostName=%s;DeviceId=%s;SharedAccessKey=%s" % (result.registration_state.assigned_hub, registration_id, key)
    client = sdk_client(emu, cs)
    client.connect()
    client.send_message("provisioned")
    client.shutdown()
    assert stored_events(emu, registration_id)[0][0] == b"provisioned"


@pytest.mark.skipif(os.geteuid() != 0, reason="the SDK dials 443 only: needs the emulator on the real ports")
def test_azure_iot_device_over_websockets_sends_and_reads_its_twin(emu):
    if emu["https_port"] != 443:
        pytest.skip("the emulator fell back to %d; the SDK only dials 443" % emu["https_port"])
    device_id, cs, _ = new_device(emu)
    client = sdk_client(emu, cs, websockets=True)
    client.connect()
    try:
        client.send_message("over websockets")
        client.patch_twin_reported_properties({"transport": "ws"})
        assert client.get_twin()["reported"]["transport"] == "ws"
    finally:
        client.shutdown()
    assert stored_events(emu, device_id)[0][0] == b"over websockets"
