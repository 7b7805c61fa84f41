//! A node run in this process and fed arbitrary bytes over real sockets, as a client sends
//! them: frame length, request header, body, for every API key and version, on a PLAINTEXT
//! listener and on a SASL_PLAINTEXT one (the SASL exchanges before authentication); and, as a
//! peer controller sends them, on its controller listener, either as a process without the
//! cluster secret or after proving it. It is the harness of the fuzz targets
//! `fuzz/fuzz_targets/request_frames.rs` and `controller_rpc.rs` (run by hand with
//! `cargo fuzz`) and of their CI slices (`tests/fuzz_requests.rs`,
//! `tests/fuzz_controller.rs`: seeds and seeded mutations for a bounded time). A panic
//! anywhere in the node is a finding: the panic hook counts them (a handler's task would
//! otherwise swallow it).
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

/// The PLAIN user of the SASL listener.
pub const USER: (&str, &str) = ("alice", "alice-secret");

/// The node's cluster secret (`sluice.cluster.secret.file`).
const SECRET: &[u8] = b"fuzzing-cluster-secret-0123456789";

/// Which listener an input goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Plaintext,
    Sasl,
    /// The controller listener, by a process that does not hold the cluster secret.
    Controller,
    /// The controller listener, after the secret exchange (a member of the cluster).
    Peer,
}

/// An input: the frames of one connection, in order, and the listener they go to.
#[derive(Debug, Clone)]
pub struct Input {
    pub port: Port,
    pub frames: Vec<Vec<u8>>,
}

impl Input {
    fn one(port: Port, frame: Vec<u8>) -> Self {
        Self {
            port,
            frames: vec![frame],
        }
    }

    /// The bytes sent.
    pub fn bytes(&self) -> Vec<u8> {
        self.frames.concat()
    }
}

/// A node serving on ephemeral ports of 127.0.0.1, with its own data dir and runtime.
pub struct FuzzNode {
    pub addr: SocketAddr,
    pub sasl_addr: SocketAddr,
    pub controller_addr: SocketAddr,
    panics: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl FuzzNode {
    /// A node whose panics are counted ([`FuzzNode::panics`]).
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// A node whose first panic aborts the process (what libFuzzer catches).
    pub fn start_aborting() -> Self {
        Self::start_with(true)
    }

    fn start_with(abort_on_panic: bool) -> Self {
        let panics = Arc::new(AtomicUsize::new(0));
        let counted = panics.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            counted.fetch_add(1, Ordering::SeqCst);
            previous(info);
            if abort_on_panic {
                std::process::abort();
            }
        }));
        let dir = tempfile::tempdir().expect("tempdir");
        let secret_file = dir.path().join("cluster.secret");
        std::fs::write(&secret_file, SECRET).expect("secret file");
        let mut args = super::one_node_args(&dir.path().join("data"));
        let (user, password) = USER;
        args.configs.extend([
            "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0".to_string(),
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER".into(),
            format!(
                "listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.\
                 security.plain.PlainLoginModule required user_{user}=\"{password}\";"
            ),
            // Failed logins are answered at once: the fuzzer makes many.
            "connection.failed.authentication.delay.ms=0".into(),
            format!("sluice.cluster.secret.file={}", secret_file.display()),
        ]);
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
        let listener = |name: &str| {
            serving
                .listeners
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, a)| *a)
                .unwrap_or_else(|| panic!("no {name} listener in {:?}", serving.listeners))
        };
        let node = Self {
            addr: listener("PLAINTEXT"),
            sasl_addr: listener("SASL_PLAINTEXT"),
            controller_addr: serving.controller_addr,
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
        node.feed_bytes(Port::Plaintext, &frame(ApiKey::CreateTopics, 5, &body));
        node
    }

    /// Panics seen in this process so far.
    pub fn panics(&self) -> usize {
        self.panics.load(Ordering::SeqCst)
    }

    /// Sends `input`'s bytes as they are on a fresh connection to its listener, closes the
    /// sending side, and reads what comes back until the node closes the connection or stays
    /// quiet.
    /// Returns how many whole answers came back.
    pub fn feed(&self, input: &Input) -> usize {
        self.feed_bytes(input.port, &input.bytes())
    }

    /// [`FuzzNode::feed`] for raw bytes.
    pub fn feed_bytes(&self, port: Port, input: &[u8]) -> usize {
        let addr = match port {
            Port::Plaintext => self.addr,
            Port::Sasl => self.sasl_addr,
            Port::Controller | Port::Peer => self.controller_addr,
        };
        let Ok(mut s) = TcpStream::connect(addr) else {
            return 0;
        };
        let _ = s.set_read_timeout(Some(QUIET));
        let _ = s.set_write_timeout(Some(QUIET));
        if port == Port::Peer && !prove_membership(&mut s) {
            return 0;
        }
        let _ = s.write_all(input);
        let _ = s.shutdown(Shutdown::Write);
        let mut received = Vec::new();
        let mut buf = [0u8; 64 << 10];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            if received.len() < 1 << 20 {
                received.extend_from_slice(&buf[..n]);
            }
        }
        answers_in(&received)
    }

    /// Whether the node's controller answers a peer's broker heartbeat within 10 s.
    pub fn controller_answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(self.controller_addr) else {
            return false;
        };
        if !prove_membership(&mut s) {
            return false;
        }
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let heartbeat = br#"{"BrokerHeartbeat":{"broker_id":1}}"#;
        let mut frame = (heartbeat.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(heartbeat);
        let mut len = [0u8; 4];
        s.write_all(&frame).is_ok() && s.read_exact(&mut len).is_ok() && u32::from_be_bytes(len) > 0
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

/// The client's side of the cluster secret exchange (controller/src/secret.rs), in JSON
/// frames as a peer controller sends them; false if the node did not accept it.
fn prove_membership(s: &mut TcpStream) -> bool {
    let secret = sluice_controller::ClusterSecret::new(SECRET).expect("secret");
    let json_frame = |value: serde_json::Value| {
        let json = value.to_string().into_bytes();
        let mut frame = (json.len() as u32).to_be_bytes().to_vec();
        frame.extend(json);
        frame
    };
    let client = "fuzzer-nonce";
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let hello = json_frame(serde_json::json!({"Hello": {"nonce": client}}));
    let mut len = [0u8; 4];
    if s.write_all(&hello).is_err() || s.read_exact(&mut len).is_err() {
        return false;
    }
    let mut body = vec![0u8; u32::from_be_bytes(len).min(4096) as usize];
    if s.read_exact(&mut body).is_err() {
        return false;
    }
    let challenge: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let Some(server) = challenge["Challenge"]["nonce"].as_str() else {
        return false;
    };
    let proof = secret.proof("client", client, server);
    let _ = s.set_read_timeout(Some(QUIET));
    s.write_all(&json_frame(serde_json::json!({"Proof": {"proof": proof}})))
        .is_ok()
}

/// Seeds for the controller listener: a peer's requests of every kind after the secret
/// exchange; the exchange's first message, garbage and a Kafka ApiVersions (the listener
/// hands Kafka clients to the broker) from a process without the secret.
pub fn controller_seeds() -> Vec<Input> {
    let mut seeds: Vec<Input> = sluice_controller::example_request_frames()
        .into_iter()
        .map(|frame| Input::one(Port::Peer, frame))
        .collect();
    let hello = br#"{"Hello":{"nonce":"AAAA"}}"#;
    let mut hello_frame = (hello.len() as u32).to_be_bytes().to_vec();
    hello_frame.extend_from_slice(hello);
    seeds.extend([
        Input::one(Port::Controller, hello_frame),
        Input::one(Port::Controller, b"\x00\x00\x00\x05{\"Vo\"".to_vec()),
        Input::one(Port::Controller, frame(ApiKey::ApiVersions, 3, &[0, 0, 0])),
    ]);
    seeds
}

/// How many whole size-prefixed frames `bytes` starts with.
fn answers_in(mut bytes: &[u8]) -> usize {
    let mut count = 0;
    while bytes.len() >= 4 {
        let len = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let Some(rest) = usize::try_from(len).ok().and_then(|l| bytes.get(4 + l..)) else {
            break;
        };
        bytes = rest;
        count += 1;
    }
    count
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
pub fn request_seeds() -> Vec<Input> {
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
            seeds.push(Input::one(
                Port::Plaintext,
                frame(key, version, &body.unwrap_or_default()),
            ));
        }
    }
    seeds
}

/// The topic the produce seeds write to.
pub const TOPIC: &str = "fuzz";

/// Produce requests (v3, v9: the classic and the compact encoding) to [`TOPIC`] carrying
/// each of [`batch_seeds`], so that mutations reach record-batch validation.
pub fn produce_seeds() -> Vec<Input> {
    let mut seeds = Vec::new();
    for batch in batch_seeds() {
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch)))])]);
        for version in [3, 9] {
            let mut body = BytesMut::new();
            request.encode(&mut body, version).expect("Produce encodes");
            seeds.push(Input::one(
                Port::Plaintext,
                frame(ApiKey::Produce, version, &body),
            ));
        }
    }
    seeds
}

/// Record batches as producers send them: keyed records with headers, a tombstone, in
/// every codec, plain and transactional.
pub fn batch_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        for transactional in [false, true] {
            let records: Vec<Record> = (0..4)
                .map(|i| Record {
                    transactional,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: -1,
                    producer_id: if transactional { 7 } else { -1 },
                    producer_epoch: if transactional { 0 } else { -1 },
                    timestamp_type: TimestampType::Creation,
                    offset: i,
                    sequence: if transactional { i as i32 } else { -1 },
                    timestamp: 1_700_000_000_000 + i,
                    key: Some(Bytes::from(format!("key-{}", i % 2))),
                    // The last record deletes its key.
                    value: (i < 3).then(|| Bytes::from(format!("value-{i}").repeat(8))),
                    headers: [(
                        StrBytes::from_static_str("h"),
                        Some(Bytes::from_static(b"v")),
                    )]
                    .into_iter()
                    .collect(),
                })
                .collect();
            let mut batch = BytesMut::new();
            let options = RecordEncodeOptions {
                version: 2,
                compression,
            };
            RecordBatchEncoder::encode(&mut batch, records.iter(), &options)
                .expect("batch encodes");
            // The encoder may write more than one batch; each is a seed.
            let batches = sluice_storage::batch::split_batches(&batch).expect("batches split");
            let ends = batches
                .iter()
                .skip(1)
                .map(|(at, _)| *at)
                .chain([batch.len()]);
            for ((start, _), end) in batches.iter().zip(ends) {
                seeds.push(batch[*start..end].to_vec());
            }
        }
    }
    seeds
}

/// Runs what the broker runs on a batch's bytes: produce validation, the split of a fetch's
/// bytes into batches, and the cleaner's reader and rewriter (keeping every other record).
pub fn feed_batch(bytes: &[u8]) {
    let _ = sluice_storage::batch::validate(bytes);
    let _ = sluice_storage::batch::split_batches(bytes);
    let _ = sluice_storage::batch::last_offset_in(bytes);
    if sluice_storage::records::records(bytes).is_ok() {
        let mut n = 0;
        let _ = sluice_storage::records::retain(bytes, |_| {
            n += 1;
            n % 2 == 0
        });
    }
}

/// SASL exchanges on the SASL listener, as clients run them: ApiVersions, SaslHandshake v0
/// and v1 for every mechanism, then SaslAuthenticate v0-v2 (or, after v0, a bare token) with a
/// PLAIN login that succeeds, a SCRAM client-first message and an OAUTHBEARER token, each
/// followed by a Metadata request.
pub fn sasl_seeds() -> Vec<Input> {
    use kafka_protocol::messages::{
        ApiVersionsRequest, MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
    };
    let encoded = |key: ApiKey, version: i16, request: &dyn Fn(&mut BytesMut)| {
        let mut body = BytesMut::new();
        request(&mut body);
        frame(key, version, &body)
    };
    let api_versions = encoded(ApiKey::ApiVersions, 3, &|b| {
        ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("fuzz"))
            .with_client_software_version(StrBytes::from_static_str("1"))
            .encode(b, 3)
            .expect("encodes")
    });
    let metadata = encoded(ApiKey::Metadata, 12, &|b| {
        MetadataRequest::default().encode(b, 12).expect("encodes")
    });
    let (user, password) = USER;
    let unsigned_jwt = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMH0.";
    let tokens: [(&str, Vec<u8>); 4] = [
        ("PLAIN", format!("\0{user}\0{password}").into_bytes()),
        (
            "SCRAM-SHA-256",
            format!("n,,n={user},r=fyko+d2lbbFgONRv9qkxdawL").into_bytes(),
        ),
        (
            "SCRAM-SHA-512",
            format!("n,,n={user},r=rOprNGfwEbeRWgbNEkqO").into_bytes(),
        ),
        (
            "OAUTHBEARER",
            format!("n,,\x01auth=Bearer {unsigned_jwt}\x01\x01").into_bytes(),
        ),
    ];
    let mut seeds = Vec::new();
    for (mechanism, token) in tokens {
        for handshake_version in [0i16, 1] {
            let handshake = encoded(ApiKey::SaslHandshake, handshake_version, &|b| {
                SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(mechanism))
                    .encode(b, handshake_version)
                    .expect("encodes")
            });
            let mut exchanges: Vec<Vec<u8>> = Vec::new();
            if handshake_version == 0 {
                // After a v0 handshake the token goes as a bare frame.
                let mut bare = (token.len() as i32).to_be_bytes().to_vec();
                bare.extend_from_slice(&token);
                exchanges.push(bare);
            } else {
                for version in 0..=2i16 {
                    exchanges.push(encoded(ApiKey::SaslAuthenticate, version, &|b| {
                        SaslAuthenticateRequest::default()
                            .with_auth_bytes(Bytes::from(token.clone()))
                            .encode(b, version)
                            .expect("encodes")
                    }));
                }
            }
            for authenticate in exchanges {
                seeds.push(Input {
                    port: Port::Sasl,
                    frames: vec![
                        api_versions.clone(),
                        handshake.clone(),
                        authenticate,
                        metadata.clone(),
                    ],
                });
            }
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

/// With `SLUICE_FUZZ_CORPUS=<dir>`, writes `seeds` there as a cargo-fuzz target's starting
/// corpus: each file a selector byte (1 for seeds sent to `odd`, else 0: the target's way
/// of picking the listener), then the bytes sent.
pub fn write_corpus(seeds: &[Input], odd: Port) {
    let Some(dir) = std::env::var_os("SLUICE_FUZZ_CORPUS") else {
        return;
    };
    std::fs::create_dir_all(&dir).unwrap();
    for (i, seed) in seeds.iter().enumerate() {
        let mut file = vec![u8::from(seed.port == odd)];
        file.extend(seed.bytes());
        std::fs::write(
            std::path::Path::new(&dir).join(format!("seed-{i:04}")),
            file,
        )
        .unwrap();
    }
}

/// Feeds `node` mutations of `seeds` for `budget`, each on its own connection, checking
/// every 1000 inputs and at the end that it still `answers`; then that nothing panicked and
/// that resident memory stayed within 512 MiB of `rss_before`.
pub fn feed_mutations(
    node: &FuzzNode,
    seeds: &[Input],
    mut rng: Rng,
    budget: Duration,
    rss_before: u64,
    answers: impl Fn(&FuzzNode) -> bool,
) {
    let started = std::time::Instant::now();
    let mut fed = 0usize;
    while started.elapsed() < budget {
        let seed = &seeds[rng.below(seeds.len())];
        node.feed(&mutate(seed, &mut rng));
        fed += 1;
        if fed.is_multiple_of(1000) {
            assert!(
                answers(node),
                "the node stopped answering after {fed} inputs"
            );
        }
    }
    assert!(answers(node), "the node stopped answering");
    assert_eq!(node.panics(), 0, "the node panicked (see stderr)");
    let rss_after = rss_mib();
    println!(
        "{} seeds and {fed} mutations in {:?}; RSS {rss_before} -> {rss_after} MiB",
        seeds.len(),
        started.elapsed()
    );
    assert!(
        rss_after < rss_before + 512,
        "memory grew from {rss_before} to {rss_after} MiB"
    );
}

/// `seed` with one of its frames changed (see [`mutate_frame`]).
pub fn mutate(seed: &Input, rng: &mut Rng) -> Input {
    let mut out = seed.clone();
    let at = rng.below(out.frames.len());
    out.frames[at] = mutate_frame(&out.frames[at], rng);
    out
}

/// `seed` changed in one to four places the way libFuzzer's mutators do (bit flips,
/// boundary bytes and integers, cuts, insertions, a repeated chunk); most of the time the
/// length prefix is made right again so that the body gets decoded rather than refused.
pub fn mutate_frame(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
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
