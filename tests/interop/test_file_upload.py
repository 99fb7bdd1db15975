"""File upload (docs/file-upload.md) with unmodified clients, against both stores the emulator
can hand out: its built-in blob endpoint, and Azurite (the Azure Storage emulator) named by
`--storage-connection-string`.

- azure-iot-device's `get_storage_info_for_blob`, azure-storage-blob's
  `BlobClient.from_blob_url(...).upload_blob(...)` on the URL formed exactly as Microsoft's
  Python sample forms it (`https://{hostName}/{containerName}/{blobName}{sasToken}`), and
  `notify_blob_upload_status`, success and failure;
- `iothub device upload` (this repository's client), a 50 MB file included;
- a notification with a correlation id the hub never handed out is refused;
- the hub reads each completed blob's size from the storage (Azurite through `--storage-ca`);
- with Azurite and `--file-upload-sas-ttl 2` on a third emulator (127.0.0.3): an expired SAS
  is refused by the storage, the late notification by the hub, and the upload is recorded
  expired.

Run through scripts/interop.sh (it starts `iothub emulator` with the built-in store and
exports IOTHUB_EMULATOR_DIR). The Azurite side is started here: Azurite from
tests/interop/azurite (scripts/install-deps.sh runs `npm ci` there) on 127.0.0.1 over HTTPS with
a throw-away CA made by openssl, its well-known development account, and a second emulator on
127.0.0.2 (so it can have 443 and 8883 too: the device SDK dials 443 for file upload) started
with `--storage-connection-string` for it.
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure.iot.device import IoTHubDeviceClient
from azure.storage.blob import BlobClient, ContainerClient

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IOTHUB = os.path.join(ROOT, "target", "debug", "iothub")
AZURITE = os.path.join(ROOT, "tests", "interop", "azurite", "node_modules", ".bin", "azurite-blob")
TIMEOUT = 60
CONTAINER = "fileupload"
# Azurite's well-known development account (public, documented by Azurite; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def read_endpoints(data_dir):
    with open(os.path.join(data_dir, "endpoints.json")) as f:
        endpoints = json.load(f)
    return {
        "dir": data_dir,
        "host": endpoints["hostName"],
        "https_port": int(endpoints["https"].rpartition(":")[2]),
        "ca": endpoints["caFile"],
        # CAs a storage client must trust: the emulator's own for its built-in blob endpoint.
        "storage_ca": endpoints["caFile"],
        "http": endpoints["http"],
        "service": endpoints["serviceConnectionString"],
    }


@pytest.fixture(scope="module")
def builtin():
    data_dir = os.environ.get("IOTHUB_EMULATOR_DIR")
    if not data_dir:
        pytest.fail("IOTHUB_EMULATOR_DIR is not set: run scripts/interop.sh")
    emu = read_endpoints(data_dir)
    if emu["https_port"] != 443:
        pytest.skip("the emulator fell back to %d; the device SDK only dials 443" % emu["https_port"])
    return emu


def free_port(host):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host, port, process, log):
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError("%s exited: %s" % (process.args[0], open(log).read()))
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("nothing listens on %s:%d after %d s" % (host, port, TIMEOUT))


def make_storage_cert(work):
    """A throw-away CA and a certificate for 127.0.0.1 signed by it, for Azurite's HTTPS."""
    ca_key, ca_pem = os.path.join(work, "storage-ca.key"), os.path.join(work, "storage-ca.pem")
    key, csr, cert = (os.path.join(work, n) for n in ("azurite.key", "azurite.csr", "azurite.pem"))
    ext = os.path.join(work, "azurite.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True, timeout=TIMEOUT)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", ca_key, "-out", ca_pem, "-days", "2", "-subj", "/CN=iothub interop storage CA")
    run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext)
    return ca_pem, cert, key


def start_emulator_over(work, host, storage_cs, storage_ca, *extra):
    """An emulator on `host` (all its real ports) whose uploads go to the account of
    `storage_cs`, trusting `storage_ca` when it reads a blob's size; returns the process and
    its endpoints (the process is the caller's to stop)."""
    data_dir = os.path.join(work, "emulator-" + host)
    os.mkdir(data_dir)
    log = os.path.join(work, "emulator-%s.log" % host)
    emulator = subprocess.Popen(
        [IOTHUB, "emulator", "--data-dir", data_dir, "--bind", host, "--hostname", host,
         "--storage-connection-string", storage_cs, "--storage-ca", storage_ca,
         "--file-upload-container", CONTAINER, *extra],
        stdout=open(log, "w"), stderr=subprocess.STDOUT,
    )
    endpoints = os.path.join(data_dir, "endpoints.json")
    deadline = time.time() + TIMEOUT
    while not (os.path.exists(endpoints) and os.path.getsize(endpoints) > 0):
        if emulator.poll() is not None or time.time() > deadline:
            emulator.kill()
            raise AssertionError("the emulator did not start: %s" % open(log).read())
        time.sleep(0.1)
    emu = read_endpoints(data_dir)
    emu["host"] = host
    emu["storage_ca"] = storage_ca
    emu["storage_cs"] = storage_cs
    return emulator, emu


@pytest.fixture(scope="module")
def azurite():
    """Azurite over HTTPS, and an emulator on 127.0.0.2 whose uploads go to it."""
    if not os.path.exists(AZURITE):
        pytest.fail("Azurite is not installed: run scripts/install-deps.sh")
    work = tempfile.mkdtemp(prefix="iothub-azurite-")
    processes = []
    try:
        storage_ca, cert, key = make_storage_cert(work)
        port = free_port("127.0.0.1")
        log = os.path.join(work, "azurite.log")
        azurite = subprocess.Popen(
            [AZURITE, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location",
             os.path.join(work, "data"), "--cert", cert, "--key", key, "--silent",
             "--skipApiVersionCheck"],
            stdout=open(log, "w"), stderr=subprocess.STDOUT,
        )
        processes.append(azurite)
        wait_for_port("127.0.0.1", port, azurite, log)
        storage_cs = (
            "DefaultEndpointsProtocol=https;AccountName=%s;AccountKey=%s;"
            "BlobEndpoint=https://127.0.0.1:%d/%s;" % (AZURITE_ACCOUNT, AZURITE_KEY, port, AZURITE_ACCOUNT)
        )
        # IoT Hub uploads into a container that already exists.
        ContainerClient.from_connection_string(
            storage_cs, CONTAINER, connection_verify=storage_ca
        ).create_container()

        process, emu = start_emulator_over(work, "127.0.0.2", storage_cs, storage_ca)
        processes.append(process)
        emu["azurite"] = azurite
        emu["work"] = work
        yield emu
    finally:
        for p in reversed(processes):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(params=["builtin", "azurite"])
def store(request):
    return request.getfixturevalue(request.param)


def iothub(emu, *args, check=True):
    run = subprocess.run(
        [IOTHUB, *args, "--data-dir", emu["dir"]] if args[0] == "hub" else [IOTHUB, *args],
        capture_output=True, text=True, timeout=TIMEOUT * 3,
    )
    if check and run.returncode != 0:
        raise AssertionError("iothub %s failed (%s): %s" % (" ".join(args), run.returncode, run.stderr))
    return run


def new_device(emu):
    device_id = "upload-" + uuid.uuid4().hex[:8]
    cs = iothub(emu, "hub", "identity", "create", device_id).stdout.strip()
    if emu["host"] != "localhost":
        cs = cs.replace("HostName=localhost;", "HostName=%s;" % emu["host"])
    return device_id, cs


def recorded_uploads(emu, device_id):
    """The hub's record of `device_id`'s uploads (`GET /devices/{id}/files`, our extension)."""
    token = iothub(emu, "sas", "--connection-string", emu["service"], "--duration", "600").stdout.strip()
    request = urllib.request.Request(
        "http://%s/devices/%s/files" % (emu["http"], device_id), headers={"Authorization": token}
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return json.load(response)


def sdk_client(emu, cs):
    with open(emu["ca"]) as f:
        ca = f.read()
    client = IoTHubDeviceClient.create_from_connection_string(cs, server_verification_cert=ca)
    return client


def sas_url(info):
    # Exactly as Microsoft's Python upload sample forms it.
    return "https://{}/{}/{}{}".format(
        info["hostName"], info["containerName"], info["blobName"], info["sasToken"]
    )


def download(emu, url):
    return BlobClient.from_blob_url(url, connection_verify=emu["storage_ca"]).download_blob().readall()


def test_device_sdk_uploads_in_blocks_and_notifies(store):
    device_id, cs = new_device(store)
    client = sdk_client(store, cs)
    client.connect()
    try:
        info = client.get_storage_info_for_blob("sdk/data.bin")
        assert info["blobName"] == "%s/sdk/data.bin" % device_id
        assert info["containerName"] and info["correlationId"] and info["sasToken"]
        data = os.urandom(3 * 1024 * 1024 + 17)
        # Small single-put and block sizes: the SDK stages blocks and commits a block list.
        blob = BlobClient.from_blob_url(
            sas_url(info), connection_verify=store["storage_ca"],
            max_single_put_size=1024 * 1024, max_block_size=1024 * 1024,
        )
        blob.upload_blob(data, overwrite=True)
        client.notify_blob_upload_status(info["correlationId"], True, 200, "OK: sdk/data.bin")
        assert download(store, sas_url(info)) == data
        [upload] = recorded_uploads(store, device_id)
        assert upload["correlationId"] == info["correlationId"]
        assert upload["state"] == "completed"
        # The hub read the size from the storage, as IoT Hub does for the notification.
        assert upload["blobSizeInBytes"] == len(data)
    finally:
        client.shutdown()


def test_device_sdk_notifies_a_failed_upload_and_a_stranger_correlation_is_refused(store):
    device_id, cs = new_device(store)
    client = sdk_client(store, cs)
    client.connect()
    try:
        info = client.get_storage_info_for_blob("sdk/failed.bin")
        client.notify_blob_upload_status(info["correlationId"], False, 500, "the camera broke")
        [upload] = recorded_uploads(store, device_id)
        assert (upload["state"], upload["statusCode"]) == ("failed", 500)
        # Nothing was committed, so nothing can be read.
        with pytest.raises(HttpResponseError):
            download(store, sas_url(info))
        with pytest.raises(Exception):
            client.notify_blob_upload_status("not-a-correlation-id", True, 200, "OK")
    finally:
        client.shutdown()


def cli_upload(emu, cs, path, blob_name):
    # One PEM with every CA the client must trust: the hub's, and the storage's.
    bundle = os.path.join(os.path.dirname(path), "trust.pem")
    with open(bundle, "w") as out:
        for ca in {emu["ca"], emu["storage_ca"]}:
            with open(ca) as f:
                out.write(f.read())
    env = dict(os.environ, IOTHUB_DEVICE_CONNECTION_STRING=cs)
    run = subprocess.run(
        [IOTHUB, "--json", "device", "upload", path, "--blob-name", blob_name,
         "--https-port", str(emu["https_port"]), "--ca-file", bundle],
        capture_output=True, text=True, timeout=TIMEOUT * 3, env=env,
    )
    return run


def test_iothub_cli_uploads_50_mb(store, tmp_path):
    device_id, cs = new_device(store)
    path = str(tmp_path / "big.bin")
    with open(path, "wb") as f:
        for _ in range(50):
            f.write(os.urandom(1024 * 1024))
    run = cli_upload(store, cs, path, "cli/big.bin")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["blobName"] == "%s/cli/big.bin" % device_id
    assert result["size"] == 50 * 1024 * 1024
    assert result["blocks"] == 13  # 4 MiB blocks
    # Read it back through a SAS the hub hands out for the same name.
    client = sdk_client(store, cs)
    client.connect()
    try:
        info = client.get_storage_info_for_blob("cli/big.bin")
        body = download(store, sas_url(info))
        client.notify_blob_upload_status(info["correlationId"], True, 200, "read back")
    finally:
        client.shutdown()
    with open(path, "rb") as f:
        assert hashlib.sha256(body).digest() == hashlib.sha256(f.read()).digest()


def stored_bytes(work):
    """Bytes Azurite has written under its data location (staged blocks included)."""
    total = 0
    for root, _, files in os.walk(os.path.join(work, "data")):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def test_iothub_cli_reports_storage_gone_mid_upload(azurite, tmp_path):
    """Azurite stops while blocks are in flight: the CLI fails, and the blob never appears."""
    device_id, cs = new_device(azurite)
    path = str(tmp_path / "doomed.bin")
    with open(path, "wb") as f:
        f.write(os.urandom(40 * 1024 * 1024))
    bundle = str(tmp_path / "trust.pem")
    with open(bundle, "w") as out:
        for ca in (azurite["ca"], azurite["storage_ca"]):
            with open(ca) as f:
                out.write(f.read())
    env = dict(os.environ, IOTHUB_DEVICE_CONNECTION_STRING=cs)
    upload = subprocess.Popen(
        [IOTHUB, "--json", "device", "upload", path, "--blob-name", "cli/doomed.bin",
         "--https-port", str(azurite["https_port"]), "--ca-file", bundle, "--block-size", "1",
         "--tries", "2", "--request-timeout", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    # Stop the storage once some blocks are stored and while the upload runs (SIGSTOP:
    # connections hang, as a storage that went away without closing them), then bring it
    # back after the client gave up.
    deadline = time.time() + TIMEOUT
    while stored_bytes(azurite["work"]) < 3 * 1024 * 1024:
        assert upload.poll() is None, "the upload ended before the storage stopped"
        assert time.time() < deadline, "no block reached Azurite"
        time.sleep(0.02)
    azurite["azurite"].send_signal(signal.SIGSTOP)
    try:
        _, stderr = upload.communicate(timeout=TIMEOUT * 5)
    finally:
        azurite["azurite"].send_signal(signal.SIGCONT)
    assert upload.returncode == 2, stderr
    assert "file upload failed" in stderr and "no answer from the storage" in stderr, stderr
    container = ContainerClient.from_connection_string(
        azurite["storage_cs"], CONTAINER, connection_verify=azurite["storage_ca"]
    )
    assert "%s/cli/doomed.bin" % device_id not in [b.name for b in container.list_blobs()]
    # The CLI told the hub: the upload is recorded failed, never completed.
    [upload] = recorded_uploads(azurite, device_id)
    assert upload["state"] == "failed", upload
    assert upload["statusCode"] == 500


def test_an_expired_sas_is_refused_by_the_storage_and_the_upload_recorded_expired(azurite):
    """An emulator handing out 2-second SAS tokens (`--file-upload-sas-ttl 2`): once expired,
    Azurite refuses the upload (403) and the hub the late notification; the hub's record says
    expired, never completed."""
    process, emu = start_emulator_over(
        azurite["work"], "127.0.0.3", azurite["storage_cs"], azurite["storage_ca"], "--file-upload-sas-ttl", "2"
    )
    try:
        device_id, cs = new_device(emu)
        client = sdk_client(emu, cs)
        client.connect()
        try:
            info = client.get_storage_info_for_blob("sdk/late.bin")
            time.sleep(4)
            with pytest.raises(HttpResponseError) as refused:
                BlobClient.from_blob_url(sas_url(info), connection_verify=emu["storage_ca"]).upload_blob(b"late")
            assert refused.value.status_code == 403, refused.value
            with pytest.raises(Exception):
                client.notify_blob_upload_status(info["correlationId"], False, 403, "SAS expired")
        finally:
            client.shutdown()
        [upload] = recorded_uploads(emu, device_id)
        assert upload["state"] == "expired", upload
        container = ContainerClient.from_connection_string(
            azurite["storage_cs"], CONTAINER, connection_verify=azurite["storage_ca"]
        )
        assert "%s/sdk/late.bin" % device_id not in [b.name for b in container.list_blobs()]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
