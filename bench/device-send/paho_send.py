"""Send every stdin line as QoS 1 telemetry with paho-mqtt (v1 API), 100 in flight; exits once
every PUBACK arrived. Args: HOST PORT CA_PEM DEVICE_ID USERNAME PASSWORD."""
import ssl
import sys

import paho.mqtt.client as mqtt

host, port, ca, device, username, password = sys.argv[1:7]
lines = sys.stdin.read().splitlines()
client = mqtt.Client(client_id=device, clean_session=False, protocol=mqtt.MQTTv311)
client.username_pw_set(username, password)
client.tls_set(ca_certs=ca, tls_version=ssl.PROTOCOL_TLS_CLIENT)
client.max_inflight_messages_set(100)
client.max_queued_messages_set(0)
client.connect(host, int(port))
client.loop_start()
topic = f"devices/{device}/messages/events/"
infos = [client.publish(topic, line, qos=1) for line in lines]
for info in infos:
    info.wait_for_publish()
client.disconnect()
client.loop_stop()
