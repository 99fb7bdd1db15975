//! The live connections, one per identity (docs/protocol.md §1.5: a new connection of the same
//! identity takes over and the old one is closed), with what each asked to receive.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::auth::Identity;
use super::lock;
use super::methods::ConnectionId;
use super::to_device::{CloseReason, Interests, ToDevice};

#[derive(Debug)]
struct Live {
    id: ConnectionId,
    tx: mpsc::UnboundedSender<Box<ToDevice>>,
    interests: Interests,
}

/// The queue of what the hub sends one connection, in order.
///
/// Its messages travel boxed: a queue allocates its first block of slots when it is created,
/// and every connection has one for its whole life, mostly idle (a block of `ToDevice`s
/// would be about 3 KB per connection, a block of boxes about 300 bytes).
#[derive(Debug)]
pub struct Outbox(mpsc::UnboundedReceiver<Box<ToDevice>>);

impl Outbox {
    /// The next message; `None` once the hub has dropped the connection (taken over by a
    /// newer one after its close, or the hub gone).
    pub async fn recv(&mut self) -> Option<ToDevice> {
        self.0.recv().await.map(|m| *m)
    }

    /// The next message if one is waiting.
    ///
    /// # Errors
    /// [`mpsc::error::TryRecvError`]: nothing waiting, or the hub dropped the connection.
    pub fn try_recv(&mut self) -> Result<ToDevice, mpsc::error::TryRecvError> {
        self.0.try_recv().map(|m| *m)
    }
}

/// The registry of live connections.
#[derive(Debug)]
pub(crate) struct Connections {
    maps: Mutex<Maps>,
    next_id: AtomicU64,
}

#[derive(Debug, Default)]
struct Maps {
    by_identity: HashMap<Identity, Live>,
    /// Whose connection each id is, for the current connections that asked for method
    /// requests only (those are addressed by connection, and only such a connection is ever
    /// sent one): an idle connection costs no entry here.
    method_receivers: HashMap<ConnectionId, Identity>,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            maps: Mutex::new(Maps::default()),
            next_id: AtomicU64::new(1),
        }
    }
}

/// A connection as the hub knows it: whose it is and which one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionRef {
    /// Whose connection it is.
    pub identity: Identity,
    /// Which of the identity's connections (a takeover gives a new id).
    pub id: ConnectionId,
}

impl Connections {
    /// Registers a new connection of `identity`, closing its previous one. Returns its id and
    /// the queue of what the hub sends it.
    pub(crate) fn attach(&self, identity: &Identity) -> (ConnectionId, Outbox) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let live = Live {
            id,
            tx,
            interests: Interests::default(),
        };
        let mut maps = lock(&self.maps);
        if let Some(previous) = maps.by_identity.insert(identity.clone(), live) {
            // Taken over: method requests no longer go to the old connection.
            maps.method_receivers.remove(&previous.id);
            let _ = previous
                .tx
                .send(Box::new(ToDevice::Close(CloseReason::TakenOver)));
        }
        (id, Outbox(rx))
    }

    /// Removes connection `id` if it is still the identity's current one.
    pub(crate) fn detach(&self, identity: &Identity, id: ConnectionId) {
        let mut maps = lock(&self.maps);
        maps.method_receivers.remove(&id);
        if maps.by_identity.get(identity).is_some_and(|c| c.id == id) {
            maps.by_identity.remove(identity);
        }
    }

    /// Whether connection `id` is still the identity's current one (not taken over).
    pub(crate) fn is_current(&self, identity: &Identity, id: ConnectionId) -> bool {
        lock(&self.maps)
            .by_identity
            .get(identity)
            .is_some_and(|c| c.id == id)
    }

    /// Records what connection `id` asked to receive, if it is still current.
    pub(crate) fn set_interests(
        &self,
        identity: &Identity,
        id: ConnectionId,
        interests: Interests,
    ) {
        let mut maps = lock(&self.maps);
        let Some(c) = maps.by_identity.get_mut(identity).filter(|c| c.id == id) else {
            return;
        };
        c.interests = interests;
        if interests.contains(Interests::METHODS) {
            maps.method_receivers.insert(id, identity.clone());
        } else {
            maps.method_receivers.remove(&id);
        }
    }

    /// Whether the identity is connected and asked for all of `interests`.
    pub(crate) fn receives(&self, identity: &Identity, interests: Interests) -> bool {
        lock(&self.maps)
            .by_identity
            .get(identity)
            .is_some_and(|c| c.interests.contains(interests))
    }

    /// Whether the identity has a live connection.
    pub(crate) fn is_connected(&self, identity: &Identity) -> bool {
        lock(&self.maps).by_identity.contains_key(identity)
    }

    /// Queues `message` for the identity's connection; false when it is not connected.
    pub(crate) fn send(&self, identity: &Identity, message: ToDevice) -> bool {
        lock(&self.maps)
            .by_identity
            .get(identity)
            .is_some_and(|c| c.tx.send(Box::new(message)).is_ok())
    }

    /// Queues `message` for connection `id` only (a method request belongs to the connection
    /// that subscribed); false when that connection is gone, was taken over, or no longer
    /// asks for method requests.
    pub(crate) fn send_to(&self, id: ConnectionId, message: ToDevice) -> bool {
        let maps = lock(&self.maps);
        maps.method_receivers
            .get(&id)
            .and_then(|identity| maps.by_identity.get(identity))
            .filter(|c| c.id == id)
            .is_some_and(|c| c.tx.send(Box::new(message)).is_ok())
    }
}

#[cfg(any(test, feature = "test-util"))]
impl super::Hub {
    /// Attaches a connection of `identity` that asked for `interests`, as a transport does
    /// after [`super::Hub::connect_device`] accepted it: for tests of the service side that
    /// need a device on the other end without a socket.
    pub fn attach_test_connection(
        &self,
        identity: &Identity,
        interests: Interests,
    ) -> (ConnectionRef, Outbox) {
        let (id, rx) = self.inner.connections.attach(identity);
        let connection = ConnectionRef {
            identity: identity.clone(),
            id,
        };
        self.interests_changed(&connection, interests);
        (connection, rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(device: &str) -> Identity {
        Identity {
            device_id: device.into(),
            module_id: None,
        }
    }

    fn method() -> ToDevice {
        ToDevice::MethodRequest {
            method: "m".into(),
            request_id: "1".into(),
            payload: bytes::Bytes::new(),
        }
    }

    #[test]
    fn method_requests_reach_a_connection_only_while_it_asks_for_them() {
        let connections = Connections::default();
        let d1 = identity("d1");
        let (id, mut rx) = connections.attach(&d1);
        // An idle connection is not addressable by id.
        assert!(lock(&connections.maps).method_receivers.is_empty());
        assert!(!connections.send_to(id, method()));
        connections.set_interests(&d1, id, Interests::METHODS);
        assert!(connections.send_to(id, method()));
        assert_eq!(rx.try_recv().ok(), Some(method()));
        connections.set_interests(&d1, id, Interests::C2D);
        assert!(!connections.send_to(id, method()));
        connections.set_interests(&d1, id, Interests::DEVICE_ALL);
        connections.detach(&d1, id);
        assert!(!connections.send_to(id, method()));
        assert!(lock(&connections.maps).method_receivers.is_empty());
    }

    #[test]
    fn a_taken_over_connection_gets_no_more_method_requests() {
        let connections = Connections::default();
        let d1 = identity("d1");
        let (old, mut old_rx) = connections.attach(&d1);
        connections.set_interests(&d1, old, Interests::METHODS);
        let (new, _new_rx) = connections.attach(&d1);
        assert_eq!(
            old_rx.try_recv().ok(),
            Some(ToDevice::Close(CloseReason::TakenOver))
        );
        assert!(!connections.send_to(old, method()));
        // The old connection asking again changes nothing: it is not current.
        connections.set_interests(&d1, old, Interests::METHODS);
        assert!(!connections.send_to(old, method()));
        connections.set_interests(&d1, new, Interests::METHODS);
        assert!(connections.send_to(new, method()));
        // The old one detaching late leaves its successor addressable.
        connections.detach(&d1, old);
        assert!(connections.send_to(new, method()));
    }
}
