//! What arrives from the hub (C2D, twin responses, desired patches, method calls) and the
//! request/response bookkeeping of twin operations, with their deadlines.

use std::sync::Arc;

use bytes::Bytes;
use iothub_proto::topic::{Incoming, ReportedPatchTopic, TWIN_RESPONSE_FILTER, TwinGetTopic};
use serde_json::Value;
use tokio::time::Instant;

use super::{Command, Driver, PendingRequest, RequestKind, fail_request};
use crate::client::{DesiredPatch, MethodCall, MethodHandler, MethodResponse};
use crate::message::C2dMessage;
use crate::session::AckToken;
use crate::{Error, ProtocolError};

impl Driver {
    pub(super) fn twin_request(&mut self, kind: RequestKind, patch: Option<Bytes>) {
        self.session.subscribe(TWIN_RESPONSE_FILTER);
        let rid = self.request_ids.next_id();
        let rid_text = rid.to_string();
        let (topic, payload) = match patch {
            Some(body) => (ReportedPatchTopic::new(rid).to_string(), body),
            // The hub ignores the body of a GET; the Python SDK sends one space
            // (docs/protocol.md §6).
            None => (TwinGetTopic::new(rid).to_string(), Bytes::from_static(b" ")),
        };
        let Some(publish_id) = self.publish_internal(topic, payload) else {
            fail_request(
                kind,
                Error::OutboxFull {
                    capacity: self.options.session.capacity,
                },
            );
            return;
        };
        self.requests.insert(
            rid_text,
            PendingRequest {
                kind,
                deadline: Instant::now() + self.options.request_timeout,
                publish_id,
            },
        );
    }

    pub(super) fn start_resync(&mut self) {
        if self
            .requests
            .values()
            .any(|r| matches!(r.kind, RequestKind::Resync))
        {
            return;
        }
        self.twin_request(RequestKind::Resync, None);
    }

    pub(super) fn route(&mut self, topic: &str, payload: &Bytes, ack: Option<AckToken>) {
        let incoming = match Incoming::parse(topic) {
            Ok(incoming) => incoming,
            Err(e) => {
                tracing::warn!(%topic, error = %e, "ignoring unrecognised publish");
                if let Some(token) = ack {
                    self.session.ack(token);
                }
                return;
            }
        };
        match incoming {
            Incoming::C2d(message) => {
                let message = C2dMessage::from_parts(message.properties(), payload.clone());
                // The PUBACK waits until the application took it from the receiver; with no
                // receiver it stays un-acknowledged and the hub redelivers it later.
                if let Some(tx) = &self.c2d
                    && tx.send((message, ack)).is_err()
                {
                    self.c2d = None;
                }
                return;
            }
            Incoming::TwinResponse(response) => {
                let rid = response.request_id().to_string();
                let status = response.status().code();
                let version = response.version();
                self.twin_response(&rid, status, version, payload);
            }
            Incoming::DesiredPatch(patch) => {
                self.desired_patch(patch.version(), payload, false);
            }
            Incoming::MethodRequest(request) => {
                let call = MethodCall {
                    name: request.name().to_owned(),
                    request_id: request.request_id().to_string(),
                    payload: serde_json::from_slice(payload).unwrap_or(Value::Null),
                };
                self.dispatch_method(call);
            }
            _ => {}
        }
        if let Some(token) = ack {
            self.session.ack(token);
        }
    }

    pub(super) fn twin_response(
        &mut self,
        rid: &str,
        status: u16,
        version: Option<u64>,
        body: &[u8],
    ) {
        let Some(request) = self.requests.remove(rid) else {
            return;
        };
        let rejected = || Error::Rejected {
            status,
            body: String::from_utf8_lossy(body).into_owned(),
        };
        match request.kind {
            RequestKind::Get(reply) => {
                let result = if (200..300).contains(&status) {
                    serde_json::from_slice(body)
                        .map_err(|e| Error::Protocol(ProtocolError::InvalidTwin(Arc::new(e))))
                } else {
                    Err(rejected())
                };
                let _ = reply.send(result);
            }
            RequestKind::Patch(reply) => {
                let result = if (200..300).contains(&status) {
                    version.ok_or(Error::Protocol(ProtocolError::MissingTwinVersion))
                } else {
                    Err(rejected())
                };
                let _ = reply.send(result);
            }
            RequestKind::Resync => {
                if !(200..300).contains(&status) {
                    return;
                }
                let Ok(twin) = serde_json::from_slice::<Value>(body) else {
                    return;
                };
                let desired = twin.get("desired").cloned().unwrap_or(Value::Null);
                let Some(version) = desired.get("$version").and_then(Value::as_u64) else {
                    return;
                };
                match self.desired_version {
                    // First sight: the baseline. The application reads it with `twin()`.
                    None => self.desired_version = Some(version),
                    Some(_) => self.emit_desired(version, desired, true),
                }
            }
        }
    }

    pub(super) fn desired_patch(&mut self, version: u64, body: &[u8], full: bool) {
        let Ok(patch) = serde_json::from_slice::<Value>(body) else {
            tracing::warn!("ignoring a desired patch that is not JSON");
            return;
        };
        self.emit_desired(version, patch, full);
    }

    /// Emits a desired-property change unless its `$version` was already seen.
    pub(super) fn emit_desired(&mut self, version: u64, patch: Value, full: bool) {
        if self.desired_version.is_some_and(|seen| version <= seen) {
            return;
        }
        self.desired_version = Some(version);
        if let Some(tx) = &self.desired {
            let _ = tx.send(DesiredPatch {
                version,
                properties: patch,
                full,
            });
        }
    }

    pub(super) fn dispatch_method(&mut self, call: MethodCall) {
        let handler: Option<MethodHandler> = self.methods.handler(&call.name);
        let weak = self.weak_commands.clone();
        tokio::spawn(async move {
            let response = match handler {
                Some(handler) => handler(call.clone()).await,
                // Unknown method: answer rather than let the service wait for its timeout.
                None => MethodResponse::new(
                    501,
                    serde_json::json!({"message": format!("method '{}' is not implemented", call.name)}),
                ),
            };
            if let Some(tx) = weak.upgrade() {
                let _ = tx
                    .send(Command::MethodResponse {
                        request_id: call.request_id,
                        status: response.status,
                        payload: Bytes::from(response.payload.to_string()),
                    })
                    .await;
            }
        });
    }

    pub(super) fn expire_requests(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .requests
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(rid, _)| rid.clone())
            .collect();
        for rid in expired {
            if let Some(request) = self.requests.remove(&rid) {
                if self.session.cancel(request.publish_id) {
                    self.waiters.remove(&request.publish_id);
                }
                let timeout = Error::Timeout(request.kind.request());
                fail_request(request.kind, timeout);
            }
        }
    }

    pub(super) fn next_request_deadline(&self) -> Option<Instant> {
        self.requests.values().map(|r| r.deadline).min()
    }
}
