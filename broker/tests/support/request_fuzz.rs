//! A node run in this process and fed arbitrary bytes over real sockets, as a client sends
//! them: frame length, request header, body, for every API key and version. It is the
//! harness of the request-path fuzz target (`fuzz/fuzz_targets/request_frames.rs`, run by
//! hand with `cargo fuzz`) and of its CI slice (`tests/fuzz_requests.rs`: seeds and seeded
//! mutations for a bounded time). A panic anywhere in the node is a finding: the panic hook
//! counts them (a handler's task would otherwise swallow it).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // shared by two harnesses

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, ProduceRequest, RequestHeader, RequestKind, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sluice::server;
use tokio_util::sync::CancellationToken;

/// The `sluice` binary's allocator (its decode guard keeps a request's claimed array
/// lengths from aborting the process), so the node here runs as it does there.
#[global_allocator]
static ALLOCATOR: sluice::decode_guard::GuardedAllocator = sluice::decode_guard::GuardedAllocator;

/// How long a connection may stay silent before the harness moves on (requests such as a
/// long-poll Fetch or a JoinGroup may rightly wait longer).
const QUIET: Duration = Duration::from_millis(150);

/// A node serving on ephemeral ports of 127.0.0.1, with its own data dir and runtime.
pub struct FuzzNode {
    pub addr: SocketAddr,
    panics: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl FuzzNode {
    pub fn start() -> Self {
        let panics = Arc::new(AtomicUsize::new(0));
        let counted = panics.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            counted.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
        let dir = tempfile::tempdir().expect("tempdir");
        let args = super::one_node_args(&dir.path().join("data"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (ready, serving) = std::sync::mpsc::channel();
        let log_levels = Arc::new(sluice::log_levels::LogLevels::new("error", None));
        runtime.spawn(async move {
            let stopped = server::serve(args, None, log_levels, CancellationToken::new(), |s| {
                let _ = ready.send(s);
            })
            .await;
            eprintln!("fuzzed node stopped: {stopped:?}");
        });
        let serving = serving
            .recv_timeout(Duration::from_secs(60))
            .expect("the node serves within 60 s");
        let node = Self {
            addr: serving.kafka_addr,
            panics,
            _runtime: runtime,
            _dir: dir,
        };
        // The topic the produce seeds write to, so their batches reach validation.
        let create = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_num_partitions(1)
                .with_replication_factor(1)]);
        let mut body = BytesMut::new();
        create.encode(&mut body, 5).expect("CreateTopics encodes");
        node.feed(&frame(ApiKey::CreateTopics, 5, &body));
        node
    }

    /// Panics seen in this process so far.
    pub fn panics(&self) -> usize {
        self.panics.load(Ordering::SeqCst)
    }

    /// Sends `input` as it is on a fresh connection, closes the sending side, and reads what
    /// comes back until the node closes the connection or stays quiet.
    pub fn feed(&self, input: &[u8]) {
        let Ok(mut s) = TcpStream::connect(self.addr) else {
            return;
        };
        let _ = s.set_read_timeout(Some(QUIET));
        let _ = s.set_write_timeout(Some(QUIET));
        let _ = s.write_all(input);
        let _ = s.shutdown(Shutdown::Write);
        let mut buf = [0u8; 64 << 10];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }

    /// Whether the node answers an ApiVersions on a fresh connection within 10 s.
    pub fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(self.addr) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let frame = frame(ApiKey::ApiVersions, 0, &[]);
        let mut len = [0u8; 4];
        s.write_all(&frame).is_ok() && s.read_exact(&mut len).is_ok() && i32::from_be_bytes(len) > 0
    }
}

/// A request frame: length prefix, a v1/v2 request header for `key` at `version`, `body`.
pub fn frame(key: ApiKey, version: i16, body: &[u8]) -> Vec<u8> {
    let mut payload = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")))
        .encode(&mut payload, key.request_header_version(version))
        .expect("header encodes");
    payload.extend_from_slice(body);
    let mut out = (payload.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&payload);
    out
}

/// One well-formed frame for every API key and version kafka-protocol knows: a request
/// decoded from a run of 0x00 or 0x01 bytes (empty strings and arrays, zero numbers, in the
/// classic and the compact encodings), encoded again. Keys or versions none of the runs
/// decode for get the bare header.
pub fn request_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for raw in 0..=100i16 {
        let Ok(key) = ApiKey::try_from(raw) else {
            continue;
        };
        let versions = key.valid_versions();
        for version in versions.min..=versions.max {
            let body = [0u8, 1u8].iter().find_map(|fill| {
                let mut run = bytes::Bytes::from(vec![*fill; 512]);
                let request = RequestKind::decode(key, &mut run, version).ok()?;
                let mut body = BytesMut::new();
                request.encode(&mut body, version).ok()?;
                Some(body.to_vec())
            });
            seeds.push(frame(key, version, &body.unwrap_or_default()));
        }
    }
    seeds
}

/// The topic the produce seeds write to.
pub const TOPIC: &str = "fuzz";

/// Produce requests (v3, v9: the classic and the compact encoding) of three records to
/// [`TOPIC`] in every codec, so that mutations reach record-batch validation and
/// decompression.
pub fn produce_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let records: Vec<Record> = (0..3)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: -1,
                timestamp: 1_700_000_000_000 + i,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(format!("value-{i}").repeat(8))),
                headers: Default::default(),
            })
            .collect();
        let mut batch = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut batch, records.iter(), &options).expect("batch encodes");
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch.freeze()))])]);
        for version in [3, 9] {
            let mut body = BytesMut::new();
            request.encode(&mut body, version).expect("Produce encodes");
            seeds.push(frame(ApiKey::Produce, version, &body));
        }
    }
    seeds
}

/// A small deterministic generator (xorshift64*), so a CI failure replays with its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// `seed` changed in one to four places the way libFuzzer's mutators do (bit flips,
/// boundary bytes and integers, cuts, insertions, a repeated chunk); most of the time the
/// length prefix is made right again so that the body gets decoded rather than refused.
pub fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    const BYTES: [u8; 6] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];
    const INTS: [i32; 7] = [0, -1, 1, i32::MAX, i32::MIN, 0x7fff, 0x10000];
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len().max(1));
        match rng.below(6) {
            0 if !out.is_empty() => out[at] ^= 1 << rng.below(8),
            1 if !out.is_empty() => out[at] = BYTES[rng.below(BYTES.len())],
            2 if out.len() >= at + 4 => {
                let v = INTS[rng.below(INTS.len())].to_be_bytes();
                out[at..at + 4].copy_from_slice(&v);
            }
            3 => out.truncate(at),
            4 => {
                let extra: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                out.splice(at..at, extra);
            }
            _ if out.len() > at => {
                let chunk = out[at..(at + 1 + rng.below(32)).min(out.len())].to_vec();
                out.splice(at..at, chunk);
            }
            _ => {}
        }
    }
    if out.len() >= 4 && rng.below(4) != 0 {
        let len = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&len.to_be_bytes());
    }
    out
}

/// Resident memory of this process, in MiB.
pub fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}
