#!/usr/bin/env python3
"""Creates N SAS devices in a running emulator (REST API) and writes the load generator's
credentials file: one line `device_id<TAB>username<TAB>password` per device.

Usage: devices.py HTTP_ADDR SERVICE_CONNECTION_STRING PREFIX COUNT CREDS_OUT
Every device gets the same primary key (the benchmark's, not a secret); tokens last 2 hours.
"""
import base64
import hashlib
import hmac
import http.client
import json
import sys
import threading
import time
import urllib.parse

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
API = "2021-04-12"


def sas(resource, key_b64, policy=None, ttl=7200):
    sr = urllib.parse.quote(resource, safe="")
    se = int(time.time()) + ttl
    sig = hmac.new(base64.b64decode(key_b64), f"{sr}\n{se}".encode(), hashlib.sha256).digest()
    token = f"SharedAccessSignature sr={sr}&sig={urllib.parse.quote(base64.b64encode(sig), safe='')}&se={se}"
    return token + (f"&skn={policy}" if policy else "")


def main():
    http_addr, service_cs, prefix, count, out = sys.argv[1:]
    count = int(count)
    parts = dict(p.split("=", 1) for p in service_cs.split(";"))
    host = parts["HostName"]
    auth = sas(host, parts["SharedAccessKey"], parts["SharedAccessKeyName"])
    ids = [f"{prefix}{i}" for i in range(count)]
    errors = []

    def create(chunk):
        h, p = http_addr.rsplit(":", 1)
        conn = http.client.HTTPConnection(h, int(p))
        for device_id in chunk:
            body = json.dumps({"deviceId": device_id, "authentication": {
                "type": "sas", "symmetricKey": {"primaryKey": KEY, "secondaryKey": KEY}}})
            conn.request("PUT", f"/devices/{device_id}?api-version={API}", body,
                         {"Authorization": auth, "Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors.append(f"{device_id}: HTTP {resp.status}")
        conn.close()

    # Several connections at once: the emulator commits their writes together (group commit).
    threads = [threading.Thread(target=create, args=(ids[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit(f"{len(errors)} devices not created, first: {errors[0]}")
    with open(out, "w") as f:
        for device_id in ids:
            token = sas(f"{host}/devices/{device_id}", KEY)
            f.write(f"{device_id}\t{host}/{device_id}/?api-version={API}\t{token}\n")


if __name__ == "__main__":
    main()
