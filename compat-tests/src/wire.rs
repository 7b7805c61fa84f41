//! Talking to a node below the clients: raw Kafka produce frames (bad-input tests) and its
//! HTTP listener (metrics, admin).

use std::io::Read;
use std::time::Duration;

use crate::node::Node;

/// Sends one Produce v7 request holding a single uncompressed batch (records with the given
/// timestamps and values, the last byte flipped when `corrupt`); returns the partition's
/// error code. For tests that need control over batch bytes no client gives.
pub fn raw_produce(node: &Node, topic: &str, records: &[(i64, &str)], corrupt: bool) -> i16 {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(&node.kafka).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(&produce_frame(topic, records, corrupt, 42))
        .expect("write");
    read_produce_response(&mut s).error_code
}

/// A whole Produce v7 frame (acks=all, partition 0) with correlation id `correlation`; see
/// [`raw_produce`].
pub fn produce_frame(
    topic: &str,
    records: &[(i64, &str)],
    corrupt: bool,
    correlation: i32,
) -> Vec<u8> {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (ts, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: *ts,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode batch");
    if corrupt {
        let last = batch.len() - 2;
        batch[last] ^= 0x55; // inside the last value: covered by the CRC
    }
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch.freeze()))])]);
    let mut payload = Vec::new();
    payload.extend_from_slice(&0i16.to_be_bytes()); // Produce
    payload.extend_from_slice(&7i16.to_be_bytes());
    payload.extend_from_slice(&correlation.to_be_bytes());
    payload.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    let mut body = BytesMut::new();
    request.encode(&mut body, 7).expect("encode produce");
    payload.extend_from_slice(&body);
    let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    frame
}

/// What one Produce v7 response said of its first partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceAnswer {
    /// The response's correlation id.
    pub correlation: i32,
    /// The partition's error code.
    pub error_code: i16,
    /// The offset given to the batch's first record.
    pub base_offset: i64,
}

/// Reads the next response on `s` as a Produce v7 response.
pub fn read_produce_response(s: &mut std::net::TcpStream) -> ProduceAnswer {
    use bytes::Bytes;
    use kafka_protocol::messages::ProduceResponse;
    use kafka_protocol::protocol::Decodable;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("response length");
    let mut response = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut response).expect("response");
    let correlation = i32::from_be_bytes([response[0], response[1], response[2], response[3]]);
    let mut rest = Bytes::from(response[4..].to_vec());
    let decoded = ProduceResponse::decode(&mut rest, 7).expect("decode produce response");
    let partition = &decoded.responses[0].partition_responses[0];
    ProduceAnswer {
        correlation,
        error_code: partition.error_code,
        base_offset: partition.base_offset,
    }
}

/// The node's `GET /metrics` body (Prometheus text).
pub fn scrape_metrics(node: &Node) -> String {
    http_get(&node.http, "/metrics")
}

/// The value of the first sample whose line starts with `prefix` (name plus labels).
pub fn metric_sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// GET `path` from an HTTP listener (HTTP/1.0, so the body ends at EOF); returns the body.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect http");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: sluice\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}
