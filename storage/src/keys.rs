//! Every column-family name and meta key layout, in one place.

use uuid::Uuid;

/// Node-local state: format version, per-partition metadata, producer state.
pub const META_CF: &str = "meta";
/// Prefix of partition column families: `p.<topic id>.<partition>`.
const PARTITION_CF_PREFIX: &str = "p.";
/// Prefix of system tables (e.g. the controller's Raft log): `sys.<name>`.
const SYSTEM_CF_PREFIX: &str = "sys.";

/// Meta key holding the on-disk format version (u32, big-endian).
pub const FORMAT_VERSION_KEY: &[u8] = b"format";

/// One partition of one topic, by topic id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    /// The topic's id (Kafka topic UUID).
    pub topic_id: Uuid,
    /// Partition index.
    pub partition: i32,
}

impl PartitionKey {
    /// Column family holding this partition's batches.
    pub fn cf_name(&self) -> String {
        format!(
            "{PARTITION_CF_PREFIX}{}.{}",
            self.topic_id.simple(),
            self.partition
        )
    }

    /// Parses a column family name made by [`PartitionKey::cf_name`].
    pub fn from_cf_name(name: &str) -> Option<Self> {
        let rest = name.strip_prefix(PARTITION_CF_PREFIX)?;
        let (id, partition) = rest.split_once('.')?;
        Some(Self {
            topic_id: Uuid::try_parse(id).ok()?,
            partition: partition.parse().ok()?,
        })
    }
}

/// Column family name of a system table.
pub fn system_cf(name: &str) -> String {
    format!("{SYSTEM_CF_PREFIX}{name}")
}

/// Key of a batch: its base offset, big-endian so keys sort by offset.
pub fn offset_key(offset: i64) -> [u8; 8] {
    (offset.max(0) as u64).to_be_bytes()
}

/// Reads a key written by [`offset_key`].
pub fn offset_from_key(key: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = key.try_into().ok()?;
    Some(u64::from_be_bytes(bytes) as i64)
}

/// Meta keys of one partition, all under a common prefix so deletion is one range.
pub struct PartitionMetaKeys {
    prefix: Vec<u8>,
}

impl PartitionMetaKeys {
    /// Meta keys of the given partition.
    pub fn new(key: &PartitionKey) -> Self {
        let mut prefix = b"part/".to_vec();
        prefix.extend_from_slice(key.cf_name().as_bytes());
        prefix.push(b'/');
        Self { prefix }
    }

    fn with(&self, suffix: &[u8]) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(suffix);
        k
    }

    /// Log start offset (i64).
    pub fn log_start(&self) -> Vec<u8> {
        self.with(b"log_start")
    }

    /// Leader-epoch cache: (epoch i32, start offset i64) pairs.
    pub fn leader_epochs(&self) -> Vec<u8> {
        self.with(b"epochs")
    }

    /// Prefix of all producer-state entries.
    pub fn producers_prefix(&self) -> Vec<u8> {
        self.with(b"producer/")
    }

    /// Producer-state entry of one producer id.
    pub fn producer(&self, producer_id: i64) -> Vec<u8> {
        let mut k = self.producers_prefix();
        k.extend_from_slice(&producer_id.to_be_bytes());
        k
    }

    /// Prefix of the aborted-transaction index: (marker offset -> producer id, first offset).
    pub fn aborted_prefix(&self) -> Vec<u8> {
        self.with(b"aborted/")
    }

    /// Aborted-transaction entry of the abort marker at `marker_offset`.
    pub fn aborted(&self, marker_offset: i64) -> Vec<u8> {
        let mut k = self.aborted_prefix();
        k.extend_from_slice(&marker_offset.to_be_bytes());
        k
    }

    /// Prefix of the time index: (running max timestamp -> first offset reaching it).
    pub fn time_index_prefix(&self) -> Vec<u8> {
        self.with(b"time/")
    }

    /// Time-index entry of one timestamp (sign bit flipped so keys sort like the values).
    pub fn time_index(&self, timestamp: i64) -> Vec<u8> {
        let mut k = self.time_index_prefix();
        k.extend_from_slice(&((timestamp as u64) ^ (1 << 63)).to_be_bytes());
        k
    }

    /// Range `[start, end)` covering every meta key of the partition.
    pub fn range(&self) -> (Vec<u8>, Vec<u8>) {
        let mut end = self.prefix.clone();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        (self.prefix.clone(), end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cf_names_round_trip() {
        let k = PartitionKey {
            topic_id: Uuid::new_v4(),
            partition: 17,
        };
        assert_eq!(PartitionKey::from_cf_name(&k.cf_name()), Some(k));
        assert_eq!(PartitionKey::from_cf_name("meta"), None);
        assert_eq!(PartitionKey::from_cf_name("p.zz.1"), None);
    }

    #[test]
    fn offset_keys_sort_numerically() {
        assert!(offset_key(255) < offset_key(256));
        assert_eq!(offset_from_key(&offset_key(12345)), Some(12345));
    }
}
