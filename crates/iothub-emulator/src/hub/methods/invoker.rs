//! The async face of [`Methods`]: the service layer awaits [`MethodInvoker::invoke`]; the
//! session glue reports subscriptions, disconnects and responses, and receives the request
//! publishes through the `send` callback given to [`MethodInvoker::new`].
//!
//! No background task: each waiting caller sleeps until its own call's deadline and then
//! drives [`Methods::handle_timeout`] itself. Time is tokio's, so tests can pause it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{CallId, ConnectionId, MethodCall, MethodError, MethodResult, Methods, Outbound};
use crate::lock::lock;

type SendFn = dyn Fn(Outbound) + Send + Sync;
type Outcome = Result<MethodResult, MethodError>;

/// A cheap-to-clone handle shared by the service layer and the session glue.
#[derive(Clone)]
pub struct MethodInvoker {
    inner: Arc<Mutex<Inner>>,
    send: Arc<SendFn>,
}

struct Inner {
    core: Methods,
    waiters: HashMap<CallId, oneshot::Sender<Outcome>>,
}

impl std::fmt::Debug for MethodInvoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodInvoker").finish_non_exhaustive()
    }
}

impl MethodInvoker {
    /// A new invoker; `send` is called (without awaiting, under a lock: keep it quick, e.g.
    /// push into the connection's channel) for every request to publish at QoS 0.
    pub fn new(send: impl Fn(Outbound) + Send + Sync + 'static) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                core: Methods::new(),
                waiters: HashMap::new(),
            })),
            send: Arc::new(send),
        }
    }

    /// Invokes a method and waits for the device's answer, the connect timeout (404103) or the
    /// response timeout (504101). Dropping the future cancels the call.
    ///
    /// # Errors
    /// [`MethodError::DeviceNotOnline`], [`MethodError::Timeout`] or
    /// [`MethodError::ResponseTooLarge`].
    pub async fn invoke(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        call: MethodCall,
    ) -> Result<MethodResult, MethodError> {
        let (tx, mut rx) = oneshot::channel();
        let id = {
            let mut inner = self.lock();
            let id = inner
                .core
                .invoke(device_id, module_id, call, Instant::now().into_std());
            inner.waiters.insert(id, tx);
            self.flush(&mut inner);
            id
        };
        let _guard = CancelOnDrop {
            invoker: self,
            call: id,
        };
        loop {
            let deadline = self.lock().core.deadline(id);
            let Some(deadline) = deadline else {
                return rx.await.unwrap_or(Err(MethodError::Cancelled));
            };
            tokio::select! {
                outcome = &mut rx => return outcome.unwrap_or(Err(MethodError::Cancelled)),
                () = tokio::time::sleep_until(Instant::from_std(deadline)) => {
                    let mut inner = self.lock();
                    inner.core.handle_timeout(Instant::now().into_std());
                    self.flush(&mut inner);
                }
            }
        }
    }

    /// See [`Methods::handle_subscribed`].
    pub fn handle_subscribed(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        connection: ConnectionId,
    ) {
        let mut inner = self.lock();
        inner
            .core
            .handle_subscribed(device_id, module_id, connection, Instant::now().into_std());
        self.flush(&mut inner);
    }

    /// See [`Methods::handle_disconnected`].
    pub fn handle_disconnected(&self, connection: ConnectionId) {
        self.lock().core.handle_disconnected(connection);
    }

    /// See [`Methods::handle_response`]; returns whether a call was completed.
    pub fn handle_response(
        &self,
        connection: ConnectionId,
        request_id: &str,
        status: i64,
        payload: &[u8],
    ) -> bool {
        let mut inner = self.lock();
        let done = inner
            .core
            .handle_response(connection, request_id, status, payload)
            .is_some();
        self.flush(&mut inner);
        done
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain maps behind; keep serving.
        lock(&self.inner)
    }

    fn flush(&self, inner: &mut Inner) {
        while let Some(out) = inner.core.poll_transmit() {
            (self.send)(out);
        }
        while let Some(done) = inner.core.poll_completion() {
            if let Some(waiter) = inner.waiters.remove(&done.call) {
                // The caller may have stopped waiting; nothing to do then.
                let _ = waiter.send(done.result);
            }
        }
    }
}

struct CancelOnDrop<'a> {
    invoker: &'a MethodInvoker,
    call: CallId,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        let mut inner = self.invoker.lock();
        inner.core.cancel(self.call);
        inner.waiters.remove(&self.call);
    }
}
