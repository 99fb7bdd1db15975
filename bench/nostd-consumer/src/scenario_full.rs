//! azure-sdk-for-c's "Hub + DPS + Plug and Play" feature set: everything a device receives is
//! classified, method and twin traffic answered, a writable property acknowledged, and a DPS
//! registration driven to its assignment (docs/protocol.md §6, §7, §8, §9).

use core::time::Duration;

use iothub_proto::pnp::WritableAck;
use iothub_proto::provisioning::{Registration, RegistrationEvent};
use iothub_proto::topic::{Incoming, MethodResponseTopic, ReportedPatchTopic, TwinGetTopic};
use iothub_proto::{Instant, RequestId, encode_into};

pub(crate) fn run() -> Result<(), i32> {
    let mut buf = [0u8; 512];

    // Twin: a real device's trace (docs/protocol.md §6, "Real trace").
    let get = encode_into(&TwinGetTopic::new(RequestId::Number(1)), &mut buf).map_err(|_| 20)?;
    if get != "$iothub/twin/GET/?$rid=1" {
        return Err(21);
    }
    let patch = encode_into(&ReportedPatchTopic::new(RequestId::Number(0)), &mut buf).map_err(|_| 22)?;
    if patch != "$iothub/twin/PATCH/properties/reported/?$rid=0" {
        return Err(23);
    }
    match Incoming::parse("$iothub/twin/res/204/?$rid=0&$version=2") {
        Ok(Incoming::TwinResponse(r)) if r.status().0 == 204 && r.version() == Some(2) => {}
        _ => return Err(24),
    }
    let version = match Incoming::parse("$iothub/twin/PATCH/properties/desired/?$version=3") {
        Ok(Incoming::DesiredPatch(p)) => p.version(),
        _ => return Err(25),
    };

    // Plug and Play: acknowledge the writable property with the desired version.
    let ack = WritableAck::new("targetTemperature", "23", 200, version).description("complete");
    let ack = encode_into(&ack, &mut buf).map_err(|_| 26)?;
    if ack != r#"{"targetTemperature":{"value":23,"ac":200,"av":3,"ad":"complete"}}"# {
        return Err(27);
    }

    // Direct method: echo the opaque request id (docs/protocol.md §7).
    let request = match Incoming::parse("$iothub/methods/POST/getMaxMinReport/?$rid=1a") {
        Ok(Incoming::MethodRequest(m)) if m.name() == "getMaxMinReport" => m,
        _ => return Err(28),
    };
    let mut topic_buf = [0u8; 64];
    let response = encode_into(&MethodResponseTopic::new(request.request_id(), 200), &mut topic_buf).map_err(|_| 29)?;
    if response != "$iothub/methods/res/200/?$rid=1a" {
        return Err(30);
    }

    // C2D: borrowed property bag.
    match Incoming::parse("devices/dev3/messages/devicebound/%24.mid=m1&%24.to=%2Fdevices%2Fdev3%2Fmessages%2Fdevicebound&property1=value%201") {
        Ok(Incoming::C2d(m)) if m.properties().iter().count() == 3 => {}
        _ => return Err(31),
    }

    // DPS: register, 202 assigning, poll after retry-after, 200 assigned (docs/protocol.md §9).
    let mut reg = Registration::new("sn-007", None);
    let t0 = Instant::from_millis(0);
    reg.start(t0);
    let tx = reg.poll_transmit(&mut buf).map_err(|_| 40)?.ok_or(41)?;
    if tx.topic != "$dps/registrations/PUT/iotdps-register/?$rid=0" {
        return Err(42);
    }
    reg.handle_publish(
        "$dps/registrations/res/202/?$rid=0&retry-after=3",
        br#"{"operationId":"4.d0a6.e717","status":"assigning"}"#,
        t0,
    )
    .map_err(|_| 43)?;
    let wake = reg.poll_timeout().ok_or(44)?;
    if wake != t0 + Duration::from_secs(3) {
        return Err(45);
    }
    reg.handle_timeout(wake);
    let tx = reg.poll_transmit(&mut buf).map_err(|_| 46)?.ok_or(47)?;
    if tx.topic != "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1&operationId=4.d0a6.e717" {
        return Err(48);
    }
    reg.handle_publish(
        "$dps/registrations/res/200/?$rid=1",
        br#"{"operationId":"4.d0a6.e717","status":"assigned","registrationState":{"assignedHub":"contoso.azure-devices.net","deviceId":"sn-007","status":"assigned"}}"#,
        wake,
    )
    .map_err(|_| 49)?;
    match reg.poll_event() {
        Some(RegistrationEvent::Assigned { assigned_hub: "contoso.azure-devices.net", device_id: "sn-007" }) => Ok(()),
        _ => Err(50),
    }
}
