//! What a handler knows of its request beyond the header and body: built by the connection
//! for each request and passed to dispatch and every handler as an argument, so what a
//! handler depends on shows in its signature: the connection's authenticated principal and
//! listener among it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::read_ahead::ReadAhead;
use crate::security::authorizer::Requester;
use crate::security::Principal;

/// The listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The Kafka listener: every API Sluice serves.
    Broker,
    /// The controller listener, which Kafka's tools reach with `--bootstrap-controller`:
    /// only the APIs a Kafka controller serves them.
    Controller,
}

/// Who a connection is, settled before its first request: one per connection, shared by
/// its requests' scopes.
#[derive(Debug)]
pub struct Session {
    /// The listener's name (`PLAINTEXT`, `SASL_SSL`, ...): Metadata answers with each
    /// broker's endpoint on it.
    pub listener_name: String,
    /// The authenticated principal (`User:ANONYMOUS` without authentication).
    pub principal: Principal,
}

/// One request's scope on its connection.
pub struct RequestScope {
    peer: Option<SocketAddr>,
    listener: Listener,
    session: Arc<Session>,
    read_ahead: Arc<ReadAhead>,
    /// Taken by the first of [`RequestScope::start_next_request`] and the end of the request.
    next_request: Mutex<Option<oneshot::Sender<()>>>,
    /// How long the connection reads nothing more once this request is answered.
    throttle: Mutex<Duration>,
}

impl RequestScope {
    /// The scope of a request from `peer`; `next_request` lets the connection start its next
    /// request (sent early by [`RequestScope::start_next_request`], or when this one ends).
    pub fn new(
        peer: Option<SocketAddr>,
        listener: Listener,
        session: Arc<Session>,
        read_ahead: Arc<ReadAhead>,
        next_request: oneshot::Sender<()>,
    ) -> Self {
        Self {
            peer,
            listener,
            session,
            read_ahead,
            next_request: Mutex::new(Some(next_request)),
            throttle: Mutex::new(Duration::ZERO),
        }
    }

    /// Throttles the client for passing a quota: once this request is answered (with the
    /// same `throttle_time_ms`), its connection reads no request for `throttle`.
    pub fn throttle(&self, throttle: Duration) {
        if let Ok(mut t) = self.throttle.lock() {
            *t = (*t).max(throttle);
        }
    }

    /// The throttle set by [`RequestScope::throttle`].
    pub fn throttled(&self) -> Duration {
        self.throttle.lock().map(|t| *t).unwrap_or_default()
    }

    /// The client's host as group descriptions show it ("/ip"), or "" if unknown.
    pub fn client_host(&self) -> String {
        self.peer
            .map(|a| format!("/{}", a.ip()))
            .unwrap_or_default()
    }

    /// The client's address, if known.
    pub fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.peer.map(|a| a.ip())
    }

    /// Who the authorizer is asked about: the principal and its address.
    pub fn requester(&self) -> Requester<'_> {
        Requester {
            principal: self.principal(),
            host: self.peer_ip(),
        }
    }

    /// The listener the request came in on.
    pub fn listener(&self) -> Listener {
        self.listener
    }

    /// The name of the listener the request came in on.
    pub fn listener_name(&self) -> &str {
        &self.session.listener_name
    }

    /// The connection's authenticated principal.
    pub fn principal(&self) -> &Principal {
        &self.session.principal
    }

    /// Batches the connection's previous fetch read ahead for this one (see `read_ahead`).
    pub fn read_ahead(&self) -> &Arc<ReadAhead> {
        &self.read_ahead
    }

    /// Lets the connection start its next request before this one is answered. Only for a
    /// request that has done everything later requests must see (a produce whose append is
    /// queued); responses still go out in request order.
    pub fn start_next_request(&self) {
        let sender = self.next_request.lock().ok().and_then(|mut s| s.take());
        if let Some(tx) = sender {
            let _ = tx.send(());
        }
    }
}
