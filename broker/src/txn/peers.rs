//! Connections from this broker to the others, for the transaction protocol's
//! broker-to-broker requests (WriteTxnMarkers, and AddPartitionsToTxn from a partition leader
//! to a transaction coordinator). One connection per node, opened on first use and dropped
//! when it breaks; requests to one node take turns on it, so each is bounded by
//! `PEER_REQUEST_TIMEOUT` (one hung answer would otherwise hold back every later one).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::protocol::Request;
use sluice_client::{ClientSecurity, KafkaClient};
use tokio::sync::Mutex;

use crate::error::BrokerError;

/// How long a peer has to answer: a little over the 30 s (`request.timeout.ms`) a marker
/// write waits there for its ISR, so a healthy peer always answers within it.
const PEER_REQUEST_TIMEOUT: Duration = Duration::from_secs(35);

/// One connection slot per node, each connecting as the inter-broker listener asks (TLS,
/// SASL).
#[derive(Default)]
pub struct PeerClients {
    clients: std::sync::Mutex<HashMap<i32, Arc<Mutex<Option<KafkaClient>>>>>,
    security: ClientSecurity,
}

impl PeerClients {
    /// Connections made with `security`.
    pub fn new(security: ClientSecurity) -> Self {
        Self {
            clients: Default::default(),
            security,
        }
    }

    fn slot(&self, node: i32) -> Arc<Mutex<Option<KafkaClient>>> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.entry(node).or_default().clone()
    }

    /// Sends `request` at `version` to `node` (listening at `addr`) and waits for the answer.
    /// A node that cannot be reached is LEADER_NOT_AVAILABLE to the caller, which retries.
    pub async fn call<R: Request>(
        &self,
        node: i32,
        addr: &str,
        request: &R,
        version: i16,
    ) -> Result<R::Response, BrokerError> {
        let slot = self.slot(node);
        let mut client = slot.lock().await;
        if client.is_none() {
            let connected = tokio::time::timeout(
                PEER_REQUEST_TIMEOUT,
                KafkaClient::connect_with(addr, &self.security),
            )
            .await
            .map_err(|_| BrokerError::LeaderNotAvailable)?
            .map_err(|_| BrokerError::LeaderNotAvailable)?;
            *client = Some(connected);
        }
        let Some(c) = client.as_mut() else {
            return Err(BrokerError::LeaderNotAvailable);
        };
        match tokio::time::timeout(PEER_REQUEST_TIMEOUT, c.send(request, version)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) | Err(_) => {
                // A broken or unanswering connection is dropped (a late answer on it would
                // be mistaken for the next request's); the next call reconnects.
                *client = None;
                Err(BrokerError::LeaderNotAvailable)
            }
        }
    }
}
