//! MQTT 3.1.1 framing for the hub side: `rumqttc::mqttbytes::v4` plus the strictness it lacks.
//!
//! rumqttc's decoder is lenient: it accepts protocol level 5 and ignores the
//! reserved fixed-header flags. IoT Hub speaks 3.1.1 only, so before decoding a frame we check
//! (MQTT 3.1.1 §2.2.2, §3.1.2.2, §3.1.2.3): the fixed-header flags of every packet type, the
//! QoS bits of PUBLISH (3 is invalid, DUP needs QoS > 0), and in CONNECT the protocol name
//! `MQTT`, level 4 and the reserved connect-flag bit.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::Packet;
use tokio_util::codec::{Decoder, Encoder};

/// Largest frame accepted: a 256 KB D2C body (docs/protocol.md §11) plus room for the topic and its
/// property bag. The exact D2C limit is checked on the parsed message by the session.
pub(crate) const MAX_INCOMING: usize = 256 * 1024 + 16 * 1024;

/// Largest frame sent (C2D is 64 KB, method requests 128 KB, twin documents under 100 KB).
const MAX_OUTGOING: usize = 512 * 1024;

/// Why a byte stream is not acceptable MQTT 3.1.1.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    /// The socket failed.
    #[error("i/o error")]
    Io(#[from] std::io::Error),
    /// The codec rejected the frame (malformed, or over the size limit).
    #[error("malformed packet: {0:?}")]
    Malformed(rumqttc::mqttbytes::Error),
    /// A CONNECT asked for another protocol than MQTT 3.1.1 (level 4).
    #[error("unsupported protocol (name or level)")]
    Protocol,
    /// Reserved bits were set.
    #[error("reserved flags set")]
    ReservedFlags,
}

/// The framing codec used by every hub connection.
#[derive(Debug, Default)]
pub(crate) struct HubCodec;

impl Decoder for HubCodec {
    type Item = Packet;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        let Some(&first) = src.first() else {
            return Ok(None);
        };
        check_fixed_header(first)?;
        if first >> 4 == 1 {
            check_connect(src)?;
        }
        match Packet::read(src, MAX_INCOMING) {
            Ok(packet) => Ok(Some(packet)),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(n)) => {
                src.reserve(n);
                Ok(None)
            }
            Err(e) => Err(CodecError::Malformed(e)),
        }
    }
}

impl Encoder<Packet> for HubCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        item.write(dst, MAX_OUTGOING)
            .map(drop)
            .map_err(CodecError::Malformed)
    }
}

/// MQTT 3.1.1 §2.2.2: the flags nibble is fixed for every type but PUBLISH.
fn check_fixed_header(first: u8) -> Result<(), CodecError> {
    let flags = first & 0x0F;
    let ok = match first >> 4 {
        3 => {
            let qos = (flags >> 1) & 0b11;
            let dup = flags & 0b1000 != 0;
            qos != 3 && !(dup && qos == 0)
        }
        6 | 8 | 10 => flags == 0b0010,
        1..=14 => flags == 0,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(CodecError::ReservedFlags)
    }
}

/// Checks the CONNECT variable header once it is buffered: `00 04 'M' 'Q' 'T' 'T' 04 flags`.
fn check_connect(src: &BytesMut) -> Result<(), CodecError> {
    // Skip the remaining-length varint (1-4 bytes, continuation bit 0x80).
    let Some(len_bytes) = src[1..].iter().take(4).position(|b| b & 0x80 == 0) else {
        return if src.len() >= 5 {
            Err(CodecError::ReservedFlags)
        } else {
            Ok(())
        };
    };
    let header = &src[2 + len_bytes..];
    if header.len() < 8 {
        return Ok(()); // not buffered yet
    }
    if &header[..6] != b"\x00\x04MQTT" || header[6] != 4 {
        return Err(CodecError::Protocol);
    }
    if header[7] & 1 != 0 {
        return Err(CodecError::ReservedFlags);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<Option<Packet>, CodecError> {
        HubCodec.decode(&mut BytesMut::from(bytes))
    }

    #[test]
    fn accepts_a_level_4_connect() {
        let mut connect = rumqttc::mqttbytes::v4::Connect::new("dev1");
        connect.keep_alive = 60;
        let mut buf = BytesMut::new();
        Packet::Connect(connect).write(&mut buf, 1024).unwrap();
        assert!(matches!(decode(&buf), Ok(Some(Packet::Connect(_)))));
    }

    #[test]
    fn rejects_mqtt_5_and_3_1() {
        let v5 = b"\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x00\x04dev1";
        assert!(matches!(decode(v5), Err(CodecError::Protocol)));
        let v31 = b"\x10\x12\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x04dev1";
        assert!(matches!(decode(v31), Err(CodecError::Protocol)));
    }

    #[test]
    fn rejects_reserved_connect_flag() {
        let bad = b"\x10\x10\x00\x04MQTT\x04\x03\x00\x3c\x00\x04dev1";
        assert!(matches!(decode(bad), Err(CodecError::ReservedFlags)));
    }

    #[test]
    fn rejects_subscribe_without_the_0010_flags_and_qos_3_publish() {
        assert!(matches!(
            decode(b"\x80\x06\x00\x01\x00\x01#\x01"),
            Err(CodecError::ReservedFlags)
        ));
        assert!(matches!(
            decode(b"\x36\x05\x00\x01a\x00\x01"),
            Err(CodecError::ReservedFlags)
        ));
        assert!(matches!(
            decode(b"\x08\x03\x00\x01a"),
            Err(CodecError::ReservedFlags)
        ));
        assert!(matches!(
            decode(b"\xf0\x00"),
            Err(CodecError::ReservedFlags)
        ));
    }

    #[test]
    fn waits_for_more_bytes_on_a_partial_frame() {
        assert!(matches!(decode(b"\x10\x10\x00\x04MQ"), Ok(None)));
        assert!(matches!(decode(b"\x30"), Ok(None)));
    }

    #[test]
    fn rejects_frames_over_the_limit_before_reading_them() {
        // PUBLISH with remaining length 300 KB: refused from the header alone.
        let len = 300 * 1024u32;
        let header = [
            0x30,
            (len & 0x7F) as u8 | 0x80,
            ((len >> 7) & 0x7F) as u8 | 0x80,
            (len >> 14) as u8,
        ];
        assert!(matches!(decode(&header), Err(CodecError::Malformed(_))));
    }
}
