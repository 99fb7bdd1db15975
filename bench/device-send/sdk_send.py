"""Send every stdin line as telemetry with the official azure-iot-device SDK (asyncio client),
100 concurrent sends at a time; exits once all completed. Args: CONNECTION_STRING CA_PEM_PATH.
The SDK always dials port 8883 (it takes no port option)."""
import asyncio
import sys

from azure.iot.device import Message
from azure.iot.device.aio import IoTHubDeviceClient


async def main() -> None:
    cs, ca_path = sys.argv[1], sys.argv[2]
    lines = sys.stdin.read().splitlines()
    with open(ca_path) as f:
        ca = f.read()
    client = IoTHubDeviceClient.create_from_connection_string(cs, server_verification_cert=ca)
    await client.connect()
    for i in range(0, len(lines), 100):
        await asyncio.gather(*(client.send_message(Message(line)) for line in lines[i : i + 100]))
    await client.shutdown()


asyncio.run(main())
