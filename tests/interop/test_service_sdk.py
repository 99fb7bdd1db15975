"""The official Python *service* SDK (azure-iot-hub) against the emulator.

Registry create/get, twin get/update with the desired patch reaching a connected
azure-iot-device client, and invoke_device_method answered by that device, all with the
emulator's service connection string over HTTPS.

Run through scripts/interop.sh, which starts the emulator and exports IOTHUB_EMULATOR_DIR
(its data dir: endpoints.json holds the ports, the CA file and the iothubowner connection
string). The service SDK always talks to https://{HostName}; when the emulator's HTTPS port is
not 443 the test puts the port into HostName (the emulator accepts tokens signed for
`host:port`), so it also runs unprivileged.
"""

import json
import os
import queue
import uuid

import pytest
from azure.iot.device import IoTHubDeviceClient, MethodResponse
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import CloudToDeviceMethod, Twin, TwinProperties

TIMEOUT = 20


@pytest.fixture(scope="module")
def emulator():
    data_dir = os.environ.get("IOTHUB_EMULATOR_DIR")
    if not data_dir:
        pytest.fail("IOTHUB_EMULATOR_DIR is not set: run scripts/interop.sh")
    with open(os.path.join(data_dir, "endpoints.json")) as f:
        endpoints = json.load(f)
    host, _, port = endpoints["https"].rpartition(":")
    service_cs = endpoints["serviceConnectionString"]
    if port != "443":
        service_cs = service_cs.replace(
            "HostName=" + endpoints["hostName"], "HostName=%s:%s" % (endpoints["hostName"], port)
        )
    # requests (under msrest) trusts this bundle for https://localhost.
    os.environ["REQUESTS_CA_BUNDLE"] = endpoints["caFile"]
    with open(endpoints["caFile"]) as f:
        ca_pem = f.read()
    return {"service_cs": service_cs, "host": endpoints["hostName"], "ca_pem": ca_pem}


@pytest.fixture
def registry(emulator):
    return IoTHubRegistryManager.from_connection_string(emulator["service_cs"])


@pytest.fixture
def device_id(registry):
    name = "sdk-" + uuid.uuid4().hex[:8]
    yield name
    try:
        registry.delete_device(name)
    except Exception:  # already gone is fine
        pass


def test_registry_creates_and_reads_a_device(registry, device_id):
    created = registry.create_device_with_sas(device_id, None, None, "enabled")
    assert created.device_id == device_id
    assert created.status == "enabled"
    assert created.authentication.type == "sas"
    fetched = registry.get_device(device_id)
    assert fetched.device_id == device_id
    assert fetched.etag == created.etag
    assert fetched.connection_state == "Disconnected"
    assert fetched.authentication.symmetric_key.primary_key == created.authentication.symmetric_key.primary_key
    assert fetched.cloud_to_device_message_count == 0


def test_desired_update_reaches_the_device_and_methods_are_answered(emulator, registry, device_id):
    created = registry.create_device_with_sas(device_id, None, None, "enabled")
    key = created.authentication.symmetric_key.primary_key
    device = IoTHubDeviceClient.create_from_connection_string(
        "HostName=%s;DeviceId=%s;SharedAccessKey=%s" % (emulator["host"], device_id, key),
        server_verification_cert=emulator["ca_pem"],
    )
    patches = queue.Queue()
    methods = queue.Queue()

    def on_method(request):
        methods.put((request.name, request.payload))
        device.send_method_response(MethodResponse.create_from_method_request(request, 200, {"rebooted": True}))

    device.on_twin_desired_properties_patch_received = patches.put
    device.on_method_request_received = on_method
    device.connect()
    try:
        assert registry.get_device(device_id).connection_state == "Connected"
        twin = registry.get_twin(device_id)
        assert twin.device_id == device_id
        assert twin.properties.desired["$version"] == 1

        patch = Twin(properties=TwinProperties(desired={"targetTemperature": 21}))
        updated = registry.update_twin(device_id, patch, twin.etag)
        assert updated.properties.desired["targetTemperature"] == 21
        received = patches.get(timeout=TIMEOUT)
        assert received == {"targetTemperature": 21, "$version": 2}
        assert device.get_twin()["desired"]["targetTemperature"] == 21

        request = CloudToDeviceMethod(method_name="reboot", payload={"delay": 1}, response_timeout_in_seconds=10)
        response = registry.invoke_device_method(device_id, request)
        assert response.status == 200
        assert response.payload == {"rebooted": True}
        assert methods.get(timeout=TIMEOUT) == ("reboot", {"delay": 1})
    finally:
        device.shutdown()


def test_errors_come_back_in_the_hub_shape(registry):
    from msrest.exceptions import HttpOperationError

    with pytest.raises(HttpOperationError) as caught:
        registry.get_device("no-such-device-" + uuid.uuid4().hex[:6])
    assert caught.value.response.status_code == 404
    inner = json.loads(caught.value.response.json()["Message"])
    assert inner["errorCode"] == 404001
    offline = "sdk-offline-" + uuid.uuid4().hex[:6]
    registry.create_device_with_sas(offline, None, None, "enabled")
    try:
        with pytest.raises(HttpOperationError) as caught:
            registry.invoke_device_method(offline, CloudToDeviceMethod(method_name="ping", payload=None))
        assert caught.value.response.status_code == 404
        assert json.loads(caught.value.response.json()["Message"])["errorCode"] == 404103
    finally:
        registry.delete_device(offline)
