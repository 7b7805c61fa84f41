//! Storage behaviour on a real RocksDB in a temp dir: append, read, recovery, idempotence.

use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use crate::batch::tests::make_batch;
use crate::{AppendEntry, AppendError, PartitionKey, PartitionLog, Store, StoreConfig};

fn key(p: i32) -> PartitionKey {
    PartitionKey {
        topic_id: Uuid::from_u128(0xfeed),
        partition: p,
    }
}

fn entry(log: &Arc<PartitionLog>, batch: Vec<u8>) -> AppendEntry {
    AppendEntry {
        txn_guard: None,
        log: log.clone(),
        batches: vec![Bytes::copy_from_slice(&batch[..])],
        leader_epoch: 0,
        log_append_time: false,
        flush_messages: u64::MAX,
        replicated: false,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn append_read_and_recover_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    {
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let logs = store.create_partitions(&[key(0), key(1)]).unwrap();
        let (a, b) = (&logs[0], &logs[1]);
        for i in 0..10 {
            let r = rt
                .block_on(store.append(vec![
                    entry(a, make_batch(3, -1, -1, -1, 1000 + i)),
                    entry(b, make_batch(1, -1, -1, -1, 5)),
                ]))
                .unwrap();
            assert_eq!(r[0].as_ref().unwrap().base_offset, i * 3);
            assert_eq!(r[1].as_ref().unwrap().base_offset, i);
        }
        assert_eq!(a.log_end_offset(), 30);
        assert_eq!(b.log_end_offset(), 10);
        // Offset 4 lives in the batch starting at 3.
        let got = store.read(a, 4, 30, 1, true).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(crate::batch::validate(&got[0]).unwrap().base_offset, 3);
        // Without min_one, a batch larger than the budget is not returned.
        assert!(store.read(a, 4, 30, 1, false).unwrap().is_empty());
        let all = store.read(a, 0, 30, usize::MAX, true).unwrap();
        assert_eq!(all.len(), 10);
        // The upper bound (high watermark) hides batches at or past it.
        assert_eq!(store.read(a, 0, 9, usize::MAX, true).unwrap().len(), 3);
        let by_time = store.batch_for_timestamp(a, 1004, 30).unwrap().unwrap();
        assert_eq!(crate::batch::validate(&by_time).unwrap().base_offset, 12);
        assert!(store.batch_for_timestamp(a, 5000, 30).unwrap().is_none());
        let newest = store.batch_with_max_timestamp(a, 30).unwrap().unwrap();
        assert_eq!(crate::batch::validate(&newest).unwrap().base_offset, 27);
    }
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let a = store.partition(&key(0)).unwrap();
    assert_eq!(a.log_end_offset(), 30);
    assert_eq!(a.log_start_offset(), 0);
    assert_eq!(store.partitions().len(), 2);
}

#[test]
fn idempotent_duplicates_and_gaps_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    {
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let log = &store.create_partitions(&[key(0)]).unwrap()[0];
        let first = make_batch(2, 77, 0, 0, 1);
        let r = rt
            .block_on(store.append(vec![entry(log, first.clone())]))
            .unwrap();
        assert!(!r[0].as_ref().unwrap().duplicate);
        let r = rt.block_on(store.append(vec![entry(log, first)])).unwrap();
        let dup = r[0].as_ref().unwrap();
        assert!(dup.duplicate);
        assert_eq!((dup.base_offset, dup.last_offset), (0, 1));
        assert_eq!(log.log_end_offset(), 2);
    }
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let log = store.partition(&key(0)).unwrap();
    let gap = make_batch(1, 77, 0, 5, 1);
    let r = rt.block_on(store.append(vec![entry(&log, gap)])).unwrap();
    assert_eq!(r[0], Err(AppendError::OutOfOrderSequence));
    let r = rt
        .block_on(store.append(vec![entry(&log, make_batch(2, 77, 0, 0, 1))]))
        .unwrap();
    assert!(
        r[0].as_ref().unwrap().duplicate,
        "dedupe state must be recovered from disk"
    );
    let next = make_batch(1, 77, 0, 2, 1);
    let r = rt.block_on(store.append(vec![entry(&log, next)])).unwrap();
    assert_eq!(r[0].as_ref().unwrap().base_offset, 2);
}

#[test]
fn deleted_partitions_disappear_and_refuse_appends() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let logs = store.create_partitions(&[key(0), key(1), key(2)]).unwrap();
    store.delete_partitions(&[key(1)]).unwrap();
    assert!(store.partition(&key(1)).is_none());
    let r = rt
        .block_on(store.append(vec![entry(&logs[1], make_batch(1, -1, -1, -1, 1))]))
        .unwrap();
    assert_eq!(r[0], Err(AppendError::UnknownPartition));
    // A write waiting on the deleted replica's high watermark (acks=all on a leader the
    // partition was moved off) is woken, not left to its timeout.
    let mut hw = logs[2].watch_high_watermark();
    hw.mark_unchanged();
    store.delete_partitions(&[key(2)]).unwrap();
    assert!(hw.has_changed().unwrap());
    assert!(logs[2].is_deleted());
    drop(store);
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    assert_eq!(store.partitions().len(), 1);
}

#[test]
fn leader_epochs_are_cached_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let log = &store.create_partitions(&[key(0)]).unwrap()[0];
    for epoch in [0, 0, 3, 3, 5] {
        let mut e = entry(log, make_batch(2, -1, -1, -1, 1));
        e.leader_epoch = epoch;
        rt.block_on(store.append(vec![e])).unwrap()[0]
            .as_ref()
            .unwrap();
    }
    assert_eq!(log.leader_epochs(), vec![(0, 0), (3, 4), (5, 8)]);
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 4)));
    assert_eq!(log.end_offset_for_epoch(4), Some((3, 8)));
    assert_eq!(log.end_offset_for_epoch(5), Some((5, 10)));
}

#[test]
fn many_partitions_are_created_in_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let keys: Vec<_> = (0..300).map(key).collect();
    let started = std::time::Instant::now();
    assert_eq!(store.create_partitions(&keys).unwrap().len(), 300);
    eprintln!("created 300 partitions in {:?}", started.elapsed());
    // Idempotent.
    assert_eq!(store.create_partitions(&keys).unwrap().len(), 300);
}

#[test]
fn system_tables_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        system_tables: vec!["raft".into()],
        ..Default::default()
    };
    let store = Store::open(dir.path(), &cfg).unwrap();
    let t = store.system_table("raft").unwrap();
    t.write(
        &[
            (b"a1".to_vec(), b"x".to_vec()),
            (b"a2".to_vec(), b"y".to_vec()),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(t.get(b"a1").unwrap(), Some(b"x".to_vec()));
    assert_eq!(t.range(b"a", b"b").unwrap().len(), 2);
    assert_eq!(t.last().unwrap().unwrap().0, b"a2".to_vec());
    t.delete_range(b"a1", b"a2").unwrap();
    assert_eq!(t.range(b"a", b"b").unwrap().len(), 1);
    assert!(store.system_table("nope").is_err());
}

#[test]
fn a_buffer_holding_two_batches_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let log = &store.create_partitions(&[key(0)]).unwrap()[0];
    let mut two = make_batch(1, -1, -1, -1, 1);
    two.extend(make_batch(1, -1, -1, -1, 2));
    let r = rt.block_on(store.append(vec![entry(log, two)])).unwrap();
    assert!(matches!(r[0], Err(AppendError::Storage(_))));
    assert_eq!(log.log_end_offset(), 0);
}

/// A batch of keyed records (`None` value = tombstone) with offsets from 0, lz4-compressed.
fn keyed_batch(records: &[(&str, Option<&str>)], ts: i64) -> Vec<u8> {
    keyed_batch_with(kafka_protocol::records::Compression::Lz4, records, ts)
}

/// A batch of keyed records with offsets from 0 in the given codec.
pub(crate) fn keyed_batch_with(
    codec: kafka_protocol::records::Compression,
    records: &[(&str, Option<&str>)],
    ts: i64,
) -> Vec<u8> {
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Constant offset - sequence keeps the encoder from splitting the batch.
            sequence: i as i32 - 1,
            timestamp: ts,
            key: Some(bytes::Bytes::copy_from_slice(k.as_bytes())),
            value: v.map(|v| bytes::Bytes::copy_from_slice(v.as_bytes())),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: codec,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.to_vec()
}

/// (offset, key, tombstone) of every record readable from the log start.
fn live_records(store: &Store, log: &PartitionLog) -> Vec<(i64, String, bool)> {
    store
        .read(log, 0, log.log_end_offset(), usize::MAX, true)
        .unwrap()
        .iter()
        .flat_map(|b| crate::records::records(b).unwrap().1)
        .map(|r| {
            let key = String::from_utf8(r.key.as_ref().unwrap().to_vec()).unwrap();
            (r.offset, key, r.is_tombstone())
        })
        .collect()
}

#[test]
fn compaction_keeps_a_batch_that_inflates_past_the_bound_whole() {
    use crate::CompactPlan;
    use kafka_protocol::records::Compression;
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let log = &store.create_partitions(&[key(0)]).unwrap()[0];
    let bomb =
        crate::records::tests::zeros(Compression::Zstd, crate::records::MAX_RECORDS_BYTES + 1);
    let batches = [
        bomb.clone(),                                           // 0: a (bomb)
        keyed_batch(&[("a", Some("2")), ("b", Some("1"))], 10), // 1..2
        keyed_batch(&[("b", Some("2"))], 20),                   // 3
        keyed_batch(&[("c", Some("1"))], 30),                   // 4: last
    ];
    for b in batches {
        rt.block_on(store.append(vec![entry(log, b)])).unwrap();
    }
    let plan = CompactPlan {
        upper: log.log_end_offset(),
        tombstone_cutoff_ms: 0,
        newest_cleanable_ms: i64::MAX,
    };
    let stats = store.compact(log, &plan).unwrap();
    assert_eq!(
        (
            stats.batches_rewritten,
            stats.batches_removed,
            stats.records_kept
        ),
        (1, 0, 3),
        "b@1 goes; the bomb, a@1 and b@3 stay"
    );
    let stored = store
        .read(log, 0, log.log_end_offset(), usize::MAX, true)
        .unwrap();
    assert_eq!(&stored[0][..], &bomb[..], "the bomb is kept byte for byte");
    assert_eq!(stored.len(), 4);
}

#[test]
fn compaction_keeps_the_latest_value_per_key_and_never_touches_the_last_batch() {
    use crate::CompactPlan;
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let log = &store.create_partitions(&[key(0)]).unwrap()[0];
    let batches: [&[(&str, Option<&str>)]; 4] = [
        &[("a", Some("1")), ("b", Some("1")), ("c", Some("1"))], // 0..2
        &[("a", Some("2")), ("b", None)],                        // 3..4
        &[("d", Some("1")), ("c", None)],                        // 5..6
        &[("a", Some("3"))],                                     // 7: last, kept whole
    ];
    for (i, b) in batches.iter().enumerate() {
        rt.block_on(store.append(vec![entry(log, keyed_batch(b, 10 * i as i64))]))
            .unwrap();
    }
    let plan = CompactPlan {
        upper: log.log_end_offset(),
        tombstone_cutoff_ms: 0,
        newest_cleanable_ms: i64::MAX,
    };
    let stats = store.compact(log, &plan).unwrap();
    assert_eq!(stats.batches_removed, 1, "batch 0 holds nothing current");
    assert_eq!(
        (stats.cleaned_upto, stats.records_kept),
        (7, 3),
        "cleaned up to the last batch, leaving b@4, d@5 and c@6 there"
    );
    let live = live_records(&store, log);
    let expect = |v: &[(i64, &str, bool)]| -> Vec<(i64, String, bool)> {
        v.iter().map(|(o, k, t)| (*o, k.to_string(), *t)).collect()
    };
    // a@3 is superseded by a@7 (in the last batch, which still decides), tombstones stay.
    assert_eq!(
        live,
        expect(&[
            (4, "b", true),
            (5, "d", false),
            (6, "c", true),
            (7, "a", false)
        ])
    );
    // Once tombstones are old enough they go too; offsets never move.
    let plan = CompactPlan {
        tombstone_cutoff_ms: i64::MAX,
        ..plan
    };
    store.compact(log, &plan).unwrap();
    assert_eq!(
        live_records(&store, log),
        expect(&[(5, "d", false), (7, "a", false)])
    );
    drop(store);
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    assert_eq!(store.partition(&key(0)).unwrap().log_end_offset(), 8);
}

#[test]
fn advancing_the_log_start_removes_whole_batches_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    {
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let log = &store.create_partitions(&[key(0)]).unwrap()[0];
        for ts in [10, 20, 30] {
            rt.block_on(store.append(vec![entry(log, make_batch(2, -1, -1, -1, ts))]))
                .unwrap();
        }
        assert_eq!(store.first_offset_newer_than(log, 15, 6).unwrap(), Some(2));
        assert!(store.advance_log_start(log, 3).unwrap());
        assert!(
            !store.advance_log_start(log, 1).unwrap(),
            "never moves back"
        );
        assert_eq!(log.log_start_offset(), 3);
        // The batch holding offset 3 (2..3) stays; the one before is gone.
        let bases: Vec<i64> = store
            .read(log, 0, 6, usize::MAX, true)
            .unwrap()
            .iter()
            .map(|b| crate::batch::validate(b).unwrap().base_offset)
            .collect();
        assert_eq!(bases, vec![2, 4]);
        // Everything expired: the log is empty but its end is kept.
        assert!(store.advance_log_start(log, 6).unwrap());
        assert!(store.read(log, 0, 6, usize::MAX, true).unwrap().is_empty());
    }
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let log = store.partition(&key(0)).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (6, 6));
}

#[test]
fn flush_messages_counts_unsynced_records_and_a_sync_clears_them() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let log = &store.create_partitions(&[key(0)]).unwrap()[0];
    let append = |n: i32| {
        let mut e = entry(log, make_batch(n, -1, -1, -1, 1));
        e.flush_messages = 3;
        rt.block_on(store.append(vec![e])).unwrap()[0]
            .as_ref()
            .unwrap();
    };
    append(2);
    let (pending, since) = log.unflushed();
    assert_eq!(pending, 2);
    assert!(since > 0, "the oldest unsynced write is timed (flush.ms)");
    append(2);
    assert_eq!(log.unflushed(), (0, 0), "2 + 2 >= flush.messages: synced");
    append(1);
    store.sync().unwrap();
    assert_eq!(log.unflushed(), (0, 0), "flush.ms sync covers it");
}

#[test]
fn timestamp_lookups_use_the_time_index_and_survive_restart_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let base_of =
        |b: Option<bytes::Bytes>| b.map(|b| crate::batch::parse_header(&b).unwrap().base_offset);
    {
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let log = &store.create_partitions(&[key(0)]).unwrap()[0];
        // Timestamps out of order, as producers may send them: 10, 30, 20, 50, 40.
        for ts in [10, 30, 20, 50, 40] {
            rt.block_on(store.append(vec![entry(log, make_batch(2, -1, -1, -1, ts))]))
                .unwrap();
        }
        let end = log.log_end_offset();
        assert_eq!(
            base_of(store.batch_for_timestamp(log, 5, end).unwrap()),
            Some(0)
        );
        assert_eq!(
            base_of(store.batch_for_timestamp(log, 25, end).unwrap()),
            Some(2)
        );
        assert_eq!(
            base_of(store.batch_for_timestamp(log, 45, end).unwrap()),
            Some(6)
        );
        assert_eq!(
            base_of(store.batch_for_timestamp(log, 51, end).unwrap()),
            None
        );
        assert_eq!(
            base_of(store.batch_with_max_timestamp(log, end).unwrap()),
            Some(6)
        );
        assert_eq!(
            base_of(store.batch_with_max_timestamp(log, 6).unwrap()),
            Some(2),
            "below upper"
        );
    }
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let log = &store.partition(&key(0)).unwrap();
    assert_eq!(
        base_of(store.batch_for_timestamp(log, 25, 10).unwrap()),
        Some(2)
    );
    store.advance_log_start(log, 4).unwrap();
    // The indexed batch (2) is gone; the first remaining batch reaching 25 is at 6.
    assert_eq!(
        base_of(store.batch_for_timestamp(log, 25, 10).unwrap()),
        Some(6)
    );
    rt.block_on(store.append(vec![entry(log, make_batch(1, -1, -1, -1, 45))]))
        .unwrap();
    assert_eq!(
        base_of(store.batch_with_max_timestamp(log, 11).unwrap()),
        Some(6),
        "50 is still the max"
    );
}

#[test]
fn a_follower_copies_batches_as_they_are_and_truncates_where_logs_diverge() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let rt = rt();
    let leader = Store::open(dir_a.path(), &StoreConfig::default()).unwrap();
    let follower = Store::open(dir_b.path(), &StoreConfig::default()).unwrap();
    let la = &leader.create_partitions(&[key(0)]).unwrap()[0];
    let lb = &follower.create_partitions(&[key(0)]).unwrap()[0];
    lb.set_follower(true);
    lb.set_follower_epoch(0);
    for (epoch, pid_seq) in [(1, 0), (1, 2), (2, 4)] {
        let mut e = entry(la, make_batch(2, 7, 0, pid_seq, 100));
        e.leader_epoch = epoch;
        rt.block_on(leader.append(vec![e])).unwrap()[0]
            .as_ref()
            .unwrap();
    }
    let copied = leader
        .read(la, 0, la.log_end_offset(), usize::MAX, true)
        .unwrap();
    for b in &copied {
        let mut e = entry(lb, b.to_vec());
        e.replicated = true;
        rt.block_on(follower.append(vec![e])).unwrap()[0]
            .as_ref()
            .unwrap();
    }
    assert_eq!(
        follower.read(lb, 0, 6, usize::MAX, true).unwrap(),
        copied,
        "same bytes"
    );
    assert_eq!(
        lb.leader_epochs(),
        vec![(1, 0), (2, 4)],
        "epochs from the batches"
    );
    // A batch behind the log end is refused.
    let mut behind = entry(lb, copied[0].to_vec());
    behind.replicated = true;
    assert!(rt.block_on(follower.append(vec![behind])).unwrap()[0].is_err());

    // The new leader's log ends epoch 1 at 4: the follower drops epoch 2's batch.
    assert!(rt.block_on(follower.truncate_to(lb, 4)).unwrap());
    assert_eq!(lb.log_end_offset(), 4);
    assert_eq!(lb.leader_epochs(), vec![(1, 0)]);
    // A producer's write to a follower is refused.
    let refused = rt.block_on(follower.append(vec![entry(lb, make_batch(1, -1, -1, -1, 1))]));
    assert!(refused.unwrap()[0].is_err());
    // Promoted: the producer's batch at 4 is forgotten, so its retry is appended, not a
    // duplicate.
    lb.set_follower(false);
    let mut retry = entry(lb, make_batch(2, 7, 0, 4, 100));
    retry.leader_epoch = 3;
    let out = rt.block_on(follower.append(vec![retry])).unwrap();
    assert_eq!(out[0].as_ref().unwrap().base_offset, 4);
    assert!(!out[0].as_ref().unwrap().duplicate);
    drop(follower);
    let follower = Store::open(dir_b.path(), &StoreConfig::default()).unwrap();
    let lb = follower.partition(&key(0)).unwrap();
    assert_eq!(lb.log_end_offset(), 6);
    assert_eq!(lb.leader_epochs(), vec![(1, 0), (3, 4)]);
}

#[test]
fn a_follower_behind_its_leaders_log_start_starts_over_there_and_stays_there_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let log = &store.create_partitions(&[key(0)]).unwrap()[0];
    for seq in [0, 2] {
        rt.block_on(store.append(vec![entry(log, make_batch(2, 7, 0, seq, 100))]))
            .unwrap()[0]
            .as_ref()
            .unwrap();
    }
    log.set_follower(true);
    log.set_follower_epoch(0);
    rt.block_on(store.restart_at(log, 40)).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (40, 40));
    assert!(store
        .read(log, 40, 40, usize::MAX, true)
        .unwrap()
        .is_empty());
    // The leader's next batch continues from there.
    let mut next = entry(log, make_batch(2, -1, -1, -1, 100));
    next.replicated = true;
    let bytes = {
        let mut b = bytes::BytesMut::from(&next.batches[0][..]);
        b[..8].copy_from_slice(&40i64.to_be_bytes());
        b.freeze()
    };
    next.batches = vec![bytes];
    rt.block_on(store.append(vec![next])).unwrap()[0]
        .as_ref()
        .unwrap();
    drop(store);
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let log = store.partition(&key(0)).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (40, 42));
}

#[test]
fn a_follower_takes_a_batch_past_its_log_end_where_the_leaders_compaction_left_a_gap() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let rt = rt();
    let leader = Store::open(dir_a.path(), &StoreConfig::default()).unwrap();
    let follower = Store::open(dir_b.path(), &StoreConfig::default()).unwrap();
    let la = &leader.create_partitions(&[key(0)]).unwrap()[0];
    let lb = &follower.create_partitions(&[key(0)]).unwrap()[0];
    lb.set_follower(true);
    lb.set_follower_epoch(0);
    for epoch in [1, 1, 2, 2] {
        let mut e = entry(la, make_batch(3, -1, -1, -1, 100));
        e.leader_epoch = epoch;
        rt.block_on(leader.append(vec![e])).unwrap()[0]
            .as_ref()
            .unwrap();
    }
    let copied = leader.read(la, 0, 12, usize::MAX, true).unwrap();
    let replicate = |b: &Bytes| {
        let mut e = entry(lb, b.to_vec());
        e.replicated = true;
        rt.block_on(follower.append(vec![e])).unwrap().remove(0)
    };
    replicate(&copied[0]).unwrap();
    // Batches 3..9 were compacted away on the leader: the next one it serves starts at 9.
    let out = replicate(&copied[3]).unwrap();
    assert_eq!((out.base_offset, out.last_offset), (9, 11));
    assert_eq!(lb.log_end_offset(), 12);
    assert_eq!(
        follower.read(lb, 3, 12, usize::MAX, true).unwrap(),
        vec![copied[3].clone()],
        "the batch keeps its offsets and bytes"
    );
    // Epoch 2 is dated from where this log ended before the gap, the earliest it can have
    // started: a replica asking where epoch 1 ends truncates to 3, keeping nothing unsure.
    assert_eq!(lb.leader_epochs(), vec![(1, 0), (2, 3)]);
    assert!(replicate(&copied[2]).is_err(), "offsets never go back");
    drop(follower);
    let follower = Store::open(dir_b.path(), &StoreConfig::default()).unwrap();
    let lb = follower.partition(&key(0)).unwrap();
    assert_eq!((lb.log_start_offset(), lb.log_end_offset()), (0, 12));
}

#[test]
fn compaction_stops_at_the_first_batch_too_young_to_clean_and_says_so() {
    use crate::CompactPlan;
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let log = &store.create_partitions(&[key(0)]).unwrap()[0];
    let batches: [&[(&str, Option<&str>)]; 4] = [
        &[("a", Some("1")), ("b", Some("1"))], // 0..1, ts 0
        &[("a", Some("2"))],                   // 2, ts 10
        &[("a", Some("3")), ("b", Some("2"))], // 3..4, ts 20: too young
        &[("a", Some("4"))],                   // 5, ts 30: last
    ];
    for (i, b) in batches.iter().enumerate() {
        rt.block_on(store.append(vec![entry(log, keyed_batch(b, 10 * i as i64))]))
            .unwrap();
    }
    let plan = CompactPlan {
        upper: log.log_end_offset(),
        tombstone_cutoff_ms: 0,
        newest_cleanable_ms: 15,
    };
    let stats = store.compact(log, &plan).unwrap();
    assert_eq!((stats.batches_removed, stats.records_removed), (2, 3));
    // The young batch and all past it wait for a later pass, which must see them as dirty.
    assert_eq!((stats.cleaned_upto, stats.records_kept), (3, 0));
    let live: Vec<i64> = live_records(&store, log).iter().map(|r| r.0).collect();
    assert_eq!(live, vec![3, 4, 5]);
}

/// A transactional data batch of `count` records.
fn txn_batch(count: i32, pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
    let mut b = make_batch(count, pid, epoch, seq, 100);
    b[21..23].copy_from_slice(&crate::batch::TRANSACTIONAL_BIT.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn marker(pid: i64, epoch: i16, commit: bool) -> Vec<u8> {
    marker_from(0, pid, epoch, commit)
}

/// A marker written by the coordinator of `coordinator_epoch`.
fn marker_from(coordinator_epoch: i32, pid: i64, epoch: i16, commit: bool) -> Vec<u8> {
    crate::control::marker_batch(pid, epoch, commit, coordinator_epoch, 100).to_vec()
}

#[test]
fn open_transactions_hold_the_stable_offset_and_aborts_are_indexed_across_restart_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let append = |store: &Store, log: &Arc<PartitionLog>, b: Vec<u8>| {
        rt.block_on(store.append(vec![entry(log, b)])).unwrap()[0]
            .clone()
            .unwrap()
            .base_offset
    };
    {
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let log = &store.create_partitions(&[key(0)]).unwrap()[0];
        append(&store, log, make_batch(2, -1, -1, -1, 1)); // 0-1, plain
        append(&store, log, txn_batch(2, 7, 0, 0)); // 2-3, producer 7 opens
        append(&store, log, txn_batch(1, 8, 0, 0)); // 4, producer 8 opens
        log.advance_high_watermark(log.log_end_offset());
        assert_eq!(log.last_stable_offset(), 2);
        assert_eq!(append(&store, log, marker(7, 0, false)), 5); // 7 aborts
        log.advance_high_watermark(log.log_end_offset());
        assert_eq!(log.last_stable_offset(), 4, "producer 8 still open");
        assert_eq!(append(&store, log, marker(8, 0, true)), 6);
        log.advance_high_watermark(log.log_end_offset());
        assert_eq!(log.last_stable_offset(), 7);
        assert_eq!(store.aborted_transactions(log, 0, 7).unwrap(), vec![(7, 2)]);
        assert!(store.aborted_transactions(log, 6, 7).unwrap().is_empty());
        // A fenced coordinator's marker (older epoch) is refused.
        append(&store, log, txn_batch(1, 9, 3, 0)); // 7, producer 9 opens at epoch 3
        let stale = rt.block_on(store.append(vec![entry(log, marker(9, 2, false))]));
        assert_eq!(stale.unwrap()[0], Err(AppendError::InvalidProducerEpoch));
        // So is a marker from a coordinator older than the one that wrote the last marker.
        append(&store, log, marker_from(4, 8, 0, true)); // 8
        let fenced = rt.block_on(store.append(vec![entry(log, marker_from(3, 8, 0, false))]));
        assert_eq!(fenced.unwrap()[0], Err(AppendError::CoordinatorFenced));
        append(&store, log, marker_from(4, 8, 0, true)); // 9: the same coordinator may retry
    }
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let log = store.partition(&key(0)).unwrap();
    log.advance_high_watermark(log.log_end_offset());
    assert_eq!(
        log.last_stable_offset(),
        7,
        "producer 9's open transaction, reloaded"
    );
    assert_eq!(
        store.aborted_transactions(&log, 0, 8).unwrap(),
        vec![(7, 2)]
    );
    // As a follower that lost the abort marker at 5 (and all after it), producer 7's
    // transaction is open again and its abort is no longer indexed.
    log.set_follower(true);
    log.set_follower_epoch(0);
    assert!(rt.block_on(store.truncate_to(&log, 5)).unwrap());
    assert!(store.aborted_transactions(&log, 0, 8).unwrap().is_empty());
    log.advance_high_watermark(log.log_end_offset());
    assert_eq!(log.last_stable_offset(), 2);
}

/// Writes a marker overtook after their guard was taken: a retry of what was appended gets
/// its offsets, a new write is refused as outside any transaction, and one of a producer the
/// marker fenced (a newer epoch) gets the stale-epoch error it can recover from.
#[test]
fn writes_overtaken_by_a_marker_are_answered_duplicate_ended_or_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let log = &store.create_partitions(&[key(0)]).unwrap()[0];
    let append = |b: Vec<u8>, guard| {
        let entry = AppendEntry {
            txn_guard: guard,
            ..entry(log, b)
        };
        rt.block_on(store.append(vec![entry])).unwrap()[0]
            .clone()
            .map(|o| o.base_offset)
    };
    let first = txn_batch(2, 7, 0, 0);
    assert_eq!(append(first.clone(), Some(log.txn_guard(7, 0))), Ok(0));
    let guard = Some(log.txn_guard(7, 0));
    assert_eq!(append(marker(7, 0, false), None), Ok(2));
    assert_eq!(append(first, guard), Ok(0), "a retry");
    assert_eq!(
        append(txn_batch(1, 7, 0, 2), guard),
        Err(AppendError::TransactionEnded)
    );
    assert_eq!(
        append(txn_batch(1, 7, 0, 2), Some(log.txn_guard(7, 0))),
        Ok(3)
    );
    let guard = Some(log.txn_guard(7, 0));
    // The coordinator fences epoch 0 (InitProducerId) and aborts with epoch 1.
    assert_eq!(append(marker(7, 1, false), None), Ok(4));
    assert_eq!(
        append(txn_batch(1, 7, 0, 3), guard),
        Err(AppendError::InvalidProducerEpoch)
    );
}

/// A keyed batch written in a transaction by producer `pid`.
fn keyed_txn_batch(records: &[(&str, Option<&str>)], pid: i64) -> Vec<u8> {
    let none = kafka_protocol::records::Compression::None;
    let mut txn = keyed_batch_with(none, records, 10);
    txn[21..23].copy_from_slice(&crate::batch::TRANSACTIONAL_BIT.to_be_bytes());
    txn[43..51].copy_from_slice(&pid.to_be_bytes());
    txn[51..53].copy_from_slice(&0i16.to_be_bytes());
    let crc = crc32c::crc32c(&txn[21..]);
    txn[17..21].copy_from_slice(&crc.to_be_bytes());
    txn
}

#[test]
fn compaction_removes_aborted_transactions_and_compacts_committed_ones() {
    use crate::CompactPlan;
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let log = &store.create_partitions(&[key(0)]).unwrap()[0];
    let none = kafka_protocol::records::Compression::None;
    for b in [
        keyed_batch_with(none, &[("k", Some("committed"))], 10), // 0
        keyed_txn_batch(&[("k", Some("aborted"))], 7),           // 1
        marker(7, 0, false),                                     // 2
        keyed_batch_with(none, &[("j", Some("old"))], 10),       // 3
        keyed_txn_batch(&[("j", Some("new"))], 8),               // 4
        marker(8, 0, true),                                      // 5
        keyed_txn_batch(&[("j", Some("open"))], 9),              // 6: still open
        keyed_batch_with(none, &[("other", Some("x"))], 10),     // 7
    ] {
        rt.block_on(store.append(vec![entry(log, b)])).unwrap()[0]
            .as_ref()
            .unwrap();
    }
    log.advance_high_watermark(log.log_end_offset());
    assert_eq!(log.last_stable_offset(), 6);
    let plan = CompactPlan {
        upper: log.log_end_offset(),
        tombstone_cutoff_ms: 0,
        newest_cleanable_ms: i64::MAX,
    };
    let stats = store.compact(log, &plan).unwrap();
    assert_eq!(stats.cleaned_upto, 6, "nothing past the open transaction");
    let live: Vec<(i64, String)> = live_records(&store, log)
        .into_iter()
        .map(|(o, k, _)| (o, k))
        .collect();
    // The aborted record is gone and did not supersede the committed value; the committed
    // transactional record superseded the older plain one; markers stay.
    let keys = |o: i64| live.iter().find(|(at, _)| *at == o).map(|(_, k)| k.clone());
    assert_eq!(keys(0).as_deref(), Some("k"), "{live:?}");
    assert_eq!(keys(1), None, "aborted batch removed: {live:?}");
    assert_eq!(
        keys(3),
        None,
        "superseded by the committed transaction: {live:?}"
    );
    assert_eq!(keys(4).as_deref(), Some("j"), "{live:?}");
    assert!(
        keys(2).is_some() && keys(5).is_some(),
        "markers kept: {live:?}"
    );
    assert_eq!(
        keys(6).as_deref(),
        Some("j"),
        "the open transaction untouched"
    );
    assert_eq!(store.aborted_transactions(log, 0, 8).unwrap(), vec![(7, 1)]);
    // The abort marker's transaction has no records left: it waits for delete.retention.ms
    // (like a tombstone), then goes with its aborted-index entry. The commit marker stays
    // while its transaction's record does.
    assert_eq!(stats.oldest_tombstone_ms, Some(100));
    let stats = store
        .compact(
            log,
            &CompactPlan {
                tombstone_cutoff_ms: 101,
                ..plan
            },
        )
        .unwrap();
    assert_eq!(
        (stats.batches_removed, stats.oldest_tombstone_ms),
        (1, None)
    );
    let offsets: Vec<i64> = live_records(&store, log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![0, 4, 5, 6, 7]);
    assert!(store.aborted_transactions(log, 0, 8).unwrap().is_empty());
}

#[test]
fn a_follower_refuses_a_batch_fetched_in_an_older_leader_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let log = &store.create_partitions(&[key(0)]).unwrap()[0];
    log.set_follower(true);
    // Leadership moved (epoch 4 -> 5) while a fetch from the old leader was in flight.
    log.set_follower_epoch(5);
    let mut stale = entry(log, make_batch(2, 7, 0, 0, 100));
    stale.replicated = true;
    stale.leader_epoch = 4;
    let outcome = rt.block_on(store.append(vec![stale])).unwrap();
    assert!(
        matches!(outcome[0], Err(crate::appender::AppendError::NotLeader)),
        "{outcome:?}"
    );
    assert_eq!(log.log_end_offset(), 0);
    let mut current = entry(log, make_batch(2, 7, 0, 0, 100));
    current.replicated = true;
    current.leader_epoch = 5;
    rt.block_on(store.append(vec![current])).unwrap()[0]
        .as_ref()
        .unwrap();
    assert_eq!(log.log_end_offset(), 2);
}
