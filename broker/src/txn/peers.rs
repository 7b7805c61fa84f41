//! Connections from this broker to the others, for the transaction protocol's
//! broker-to-broker requests (WriteTxnMarkers, and AddPartitionsToTxn from a partition leader
//! to a transaction coordinator). One connection per node, opened on first use and dropped
//! when it breaks; requests to one node take turns on it.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::protocol::Request;
use sluice_client::KafkaClient;
use tokio::sync::Mutex;

use crate::error::BrokerError;

/// One connection slot per node.
#[derive(Default)]
pub struct PeerClients {
    clients: std::sync::Mutex<HashMap<i32, Arc<Mutex<Option<KafkaClient>>>>>,
}

impl PeerClients {
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
            let connected = KafkaClient::connect(addr)
                .await
                .map_err(|_| BrokerError::LeaderNotAvailable)?;
            *client = Some(connected);
        }
        let Some(c) = client.as_mut() else {
            return Err(BrokerError::LeaderNotAvailable);
        };
        match c.send(request, version).await {
            Ok(response) => Ok(response),
            Err(_) => {
                // A broken connection is dropped; the next call reconnects.
                *client = None;
                Err(BrokerError::LeaderNotAvailable)
            }
        }
    }
}
