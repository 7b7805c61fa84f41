//! Committed offsets: an in-memory view rebuilt from, and written to, `__consumer_offsets`.
//!
//! Records use Kafka's own layout, so the topic reads like Kafka's: key v1 = (group, topic,
//! partition), value v3 = (offset, leader epoch, metadata, commit time); a null value is a
//! tombstone. The latest record per key wins, which is what compaction keeps.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::coordinator::{get_str, put_str};

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Next offset to consume.
    pub offset: i64,
    /// Leader epoch of the last consumed record, or -1.
    pub leader_epoch: i32,
    /// Client metadata string, returned as is.
    pub metadata: String,
    /// When it was committed (ms since epoch).
    pub commit_ms: i64,
}

impl Committed {
    /// What OffsetFetch answers for a partition without a committed offset.
    pub fn none() -> Self {
        Self {
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_ms: -1,
        }
    }
}

/// (topic, partition)
pub type TopicPartition = (String, i32);

const KEY_VERSION: i16 = 1;
const VALUE_VERSION: i16 = 3;

/// The record key of a group's committed offset.
pub fn encode_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(KEY_VERSION);
    put_str(&mut b, group);
    put_str(&mut b, topic);
    b.put_i32(partition);
    b.freeze()
}

/// The record value of a committed offset.
pub fn encode_value(c: &Committed) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(VALUE_VERSION);
    b.put_i64(c.offset);
    b.put_i32(c.leader_epoch);
    put_str(&mut b, &c.metadata);
    b.put_i64(c.commit_ms);
    b.freeze()
}

fn decode_key(mut key: Bytes) -> Option<(String, TopicPartition)> {
    if key.remaining() < 2 || key.get_i16() > KEY_VERSION {
        return None; // group metadata records (version 2) are not offsets
    }
    let group = get_str(&mut key)?;
    let topic = get_str(&mut key)?;
    (key.remaining() >= 4).then(|| (group, (topic, key.get_i32())))
}

fn decode_value(mut v: Bytes) -> Option<Committed> {
    if v.remaining() < 10 {
        return None;
    }
    let version = v.get_i16();
    let offset = v.get_i64();
    let leader_epoch = if version >= 3 && v.remaining() >= 4 {
        v.get_i32()
    } else {
        -1
    };
    let metadata = get_str(&mut v)?;
    let commit_ms = if v.remaining() >= 8 { v.get_i64() } else { -1 };
    Some(Committed {
        offset,
        leader_epoch,
        metadata,
        commit_ms,
    })
}

/// The committed offsets of the groups of one `__consumer_offsets` partition.
#[derive(Default)]
pub struct OffsetStore {
    groups: HashMap<String, BTreeMap<TopicPartition, Committed>>,
    /// Offsets committed in open transactions (TxnOffsetCommit), by producer id, in commit
    /// order; they take effect at the producer's commit marker.
    pending: HashMap<i64, Vec<(Bytes, Option<Bytes>)>>,
}

impl OffsetStore {
    /// Holds a transactional offset record until its producer's marker.
    pub fn apply_pending(&mut self, producer_id: i64, key: Bytes, value: Option<Bytes>) {
        self.pending
            .entry(producer_id)
            .or_default()
            .push((key, value));
    }

    /// Applies (commit) or drops (abort) a producer's pending offsets.
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool) {
        let Some(records) = self.pending.remove(&producer_id) else {
            return;
        };
        if commit {
            for (key, value) in records {
                self.apply_record(key, value);
            }
        }
    }

    /// The group's partitions with offsets committed in a still-open transaction (OffsetFetch
    /// with `require_stable` answers UNSTABLE_OFFSET_COMMIT for them until the marker).
    pub fn pending(&self, group: &str) -> BTreeSet<TopicPartition> {
        self.pending
            .values()
            .flatten()
            .filter_map(|(key, _)| decode_key(key.clone()))
            .filter(|(g, _)| g == group)
            .map(|(_, tp)| tp)
            .collect()
    }

    /// Applies one `__consumer_offsets` record (while loading or after a write).
    pub fn apply_record(&mut self, key: Bytes, value: Option<Bytes>) {
        let Some((group, tp)) = decode_key(key) else {
            return;
        };
        match value.and_then(decode_value) {
            Some(c) => {
                self.groups.entry(group).or_default().insert(tp, c);
            }
            None => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.remove(&tp);
                    if g.is_empty() {
                        self.groups.remove(&group);
                    }
                }
            }
        }
    }

    /// A group's committed offsets, if it has any.
    pub fn group(&self, group: &str) -> Option<&BTreeMap<TopicPartition, Committed>> {
        self.groups.get(group)
    }

    /// Groups that have committed offsets.
    pub fn groups(&self) -> impl Iterator<Item = String> + '_ {
        self.groups.keys().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_tombstones_delete() {
        let mut store = OffsetStore::default();
        let c = Committed {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_ms: 7,
        };
        store.apply_record(encode_key("g", "t", 1), Some(encode_value(&c)));
        assert_eq!(
            store.group("g").and_then(|g| g.get(&("t".into(), 1))),
            Some(&c)
        );
        store.apply_record(encode_key("g", "t", 1), None);
        assert!(store.group("g").is_none());
        assert_eq!(store.groups().count(), 0);
        // Garbage never panics and changes nothing.
        store.apply_record(
            Bytes::from_static(b"\x00"),
            Some(Bytes::from_static(b"\x01\x02")),
        );
        assert_eq!(store.groups().count(), 0);
    }
}
