//! MQTT 3.1.1 framing for the session: bytes in, bytes out.
//!
//! The session speaks in packets; the driver moves bytes. These are the only places packets
//! meet bytes, so the MQTT library stays inside this module and its parent.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use rumqttc::mqttbytes::{self, v4::Packet};

use super::Session;
use crate::ProtocolError;

impl Session {
    /// Decodes every complete packet at the front of `buf` and feeds it to the session; a
    /// partial packet stays in `buf` for the next read.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::MalformedPacket`] when the bytes are not MQTT 3.1.1 or a packet is
    /// larger than `max_packet_size`; the connection must be dropped then.
    pub(crate) fn handle_bytes(
        &mut self,
        buf: &mut BytesMut,
        max_packet_size: usize,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        loop {
            match Packet::read(buf, max_packet_size) {
                Ok(packet) => self.handle_packet(packet, now),
                Err(mqttbytes::Error::InsufficientBytes(_)) => return Ok(()),
                Err(e) => return Err(ProtocolError::MalformedPacket(Arc::new(e))),
            }
        }
    }

    /// Encodes every packet the session wants to send into `buf`.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::Encode`] when a packet is larger than `max_packet_size`.
    pub(crate) fn write_transmit(
        &mut self,
        now: Instant,
        buf: &mut BytesMut,
        max_packet_size: usize,
    ) -> Result<(), ProtocolError> {
        while let Some(packet) = self.poll_transmit(now) {
            packet
                .write(buf, max_packet_size)
                .map_err(|e| ProtocolError::Encode(Arc::new(e)))?;
        }
        Ok(())
    }
}

/// Appends a DISCONNECT packet: a polite close, after which the hub publishes no Will.
pub(crate) fn encode_disconnect(buf: &mut BytesMut) {
    // invariant: a DISCONNECT is two bytes and has no size limit to exceed.
    let _ = Packet::Disconnect.write(buf, usize::MAX);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rumqttc::mqttbytes::QoS;
    use rumqttc::mqttbytes::v4::{ConnAck, ConnectReturnCode, Publish};

    use super::*;
    use crate::session::{ConnectRequest, SessionConfig, SessionEvent};

    fn connected(now: Instant) -> Session {
        let mut s = Session::new(SessionConfig {
            keep_alive: Duration::from_secs(60),
            ..SessionConfig::default()
        });
        s.start_connection(
            ConnectRequest {
                client_id: "d".into(),
                username: "h/d/?api-version=2021-04-12".into(),
                password: Some("token".into()),
                clean_session: false,
            },
            now,
        );
        let mut out = BytesMut::new();
        s.write_transmit(now, &mut out, 1024).unwrap();
        let Packet::Connect(connect) = Packet::read(&mut out, 1024).unwrap() else {
            panic!("CONNECT first");
        };
        assert_eq!(connect.client_id, "d");
        assert!(!connect.clean_session);
        assert_eq!(connect.keep_alive, 60);
        let login = connect.login.unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("h/d/?api-version=2021-04-12", "token")
        );
        let mut input = BytesMut::new();
        Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false))
            .write(&mut input, 1024)
            .unwrap();
        s.handle_bytes(&mut input, 1024, now).unwrap();
        assert!(s.is_connected());
        s
    }

    #[test]
    fn decodes_packets_split_across_reads() {
        let now = Instant::now();
        let mut s = connected(now);
        let mut bytes = BytesMut::new();
        Packet::Publish(Publish::new("t/1", QoS::AtMostOnce, "a"))
            .write(&mut bytes, 1024)
            .unwrap();
        let mut first = bytes.split_to(3);
        s.handle_bytes(&mut first, 1024, now).unwrap();
        assert_eq!(first.len(), 3, "a partial packet stays buffered");
        first.extend_from_slice(&bytes);
        s.handle_bytes(&mut first, 1024, now).unwrap();
        assert!(first.is_empty());
        let published = std::iter::from_fn(|| s.poll_event()).any(|e| {
            matches!(e, SessionEvent::Publish { topic, payload, ack: None }
                if topic == "t/1" && payload.as_ref() == b"a")
        });
        assert!(published);
    }

    #[test]
    fn rejects_garbage_as_a_malformed_packet() {
        let now = Instant::now();
        let mut s = connected(now);
        // Packet type 0 is reserved (MQTT 3.1.1 §2.2.1).
        let mut garbage = BytesMut::from(&[0x00, 0x00][..]);
        assert!(matches!(
            s.handle_bytes(&mut garbage, 1024, now),
            Err(ProtocolError::MalformedPacket(_))
        ));
    }

    #[test]
    fn disconnect_is_two_bytes() {
        let mut buf = BytesMut::new();
        encode_disconnect(&mut buf);
        assert_eq!(&buf[..], &[0xe0, 0x00]);
    }
}
