//! The transactional ids of one `__transaction_state` partition, as the coordinator runtime
//! hosts them on the partition's leader. Everything here is replayed from the log.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use sluice_controller::MetadataImage;

use super::state::{self, TxnMeta};
use crate::coordinator::{CoordinatorRecord, CoordinatorShard};

/// One transaction-state partition's transactional ids.
#[derive(Default)]
pub struct TxnShard {
    txns: HashMap<String, TxnMeta>,
}

impl CoordinatorShard for TxnShard {
    fn replay(&mut self, _producer_id: i64, key: Bytes, value: Option<Bytes>) {
        let Some(id) = state::decode_key(key) else {
            return;
        };
        match value.and_then(state::decode_value) {
            Some(meta) => {
                self.txns.insert(id, meta);
            }
            None => {
                self.txns.remove(&id);
            }
        }
    }

    /// Timed work (expiry, completion) writes records, so it runs from the coordinator's
    /// own task, not here.
    fn tick(&mut self, _now: Instant, _image: &MetadataImage) {}
}

impl TxnShard {
    /// A transactional id's state.
    pub fn get(&self, transactional_id: &str) -> Option<&TxnMeta> {
        self.txns.get(transactional_id)
    }

    /// Every transactional id here, with its state.
    pub fn all(&self) -> impl Iterator<Item = (&String, &TxnMeta)> {
        self.txns.iter()
    }

    /// The record that removes a transactional id (`transactional.id.expiration.ms`).
    pub fn tombstone(transactional_id: &str) -> CoordinatorRecord {
        (state::encode_key(transactional_id), None)
    }

    /// The record that sets a transactional id's state.
    pub fn record(transactional_id: &str, meta: &TxnMeta) -> CoordinatorRecord {
        (
            state::encode_key(transactional_id),
            Some(state::encode_value(meta)),
        )
    }
}
