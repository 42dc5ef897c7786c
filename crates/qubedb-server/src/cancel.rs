//! CancelRequest: a client cancels the statement another of its connections is running.
//!
//! Each connection gets a process id (a counter) and a random secret at startup, sent in BackendKeyData
//! and registered here with its session's [`CancelHandle`]. A CancelRequest arrives on a new
//! connection carrying both; when they match a registered connection, its running statement fails
//! with 57014 (`canceling statement due to user request`). A wrong secret or an idle connection gets
//! nothing, and the requester is told nothing either way, as in PostgreSQL.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use async_trait::async_trait;
use parking_lot::Mutex;
use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;
use qubedb::CancelHandle;

/// The connections that can be canceled, by process id.
#[derive(Default)]
pub struct CancelRegistry {
    next_pid: AtomicI32,
    connections: Mutex<HashMap<i32, (i32, CancelHandle)>>,
}

impl CancelRegistry {
    /// Registers a connection's session; returns its process id and secret. The registration lasts as
    /// long as the returned guard.
    pub fn register(self: &Arc<Self>, handle: CancelHandle) -> Registration {
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed) + 1;
        // RandomState is seeded from the operating system's randomness.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_i32(pid);
        let secret = hasher.finish() as i32;
        self.connections.lock().insert(pid, (secret, handle));
        Registration {
            registry: self.clone(),
            pid,
            secret,
        }
    }

    fn cancel(&self, pid: i32, secret: i32) {
        if let Some((expected, handle)) = self.connections.lock().get(&pid)
            && *expected == secret
        {
            handle.cancel();
        }
    }
}

/// A connection's place in the registry; dropping it unregisters the connection.
pub struct Registration {
    registry: Arc<CancelRegistry>,
    pub pid: i32,
    pub secret: i32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.connections.lock().remove(&self.pid);
    }
}

/// pgwire's handler for CancelRequest messages.
pub struct Canceler {
    pub registry: Arc<CancelRegistry>,
}

#[async_trait]
impl CancelHandler for Canceler {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let secret = match request.secret_key {
            SecretKey::I32(secret) => Some(secret),
            SecretKey::Bytes(bytes) => <[u8; 4]>::try_from(bytes.as_ref())
                .ok()
                .map(i32::from_be_bytes),
        };
        if let Some(secret) = secret {
            self.registry.cancel(request.pid, secret);
        }
    }
}
