//! Request decoding, the one `match` on the API, the request quota, and response encoding.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::context::Ctx;
use crate::frame::{self, Frame};
use crate::handlers;
use crate::handlers::api_versions::{api_versions, supported};
use crate::metrics;
use crate::quota::{throttle_ms, QuotaClient};
use crate::request_scope::Listener;
use crate::request_scope::RequestScope;

/// The smallest Produce version actually decoded (the crate reads v3+).
const MIN_DECODED_PRODUCE: i16 = 3;

/// Why a connection must be closed instead of answered.
#[derive(Debug, thiserror::Error)]
pub enum CloseReason {
    /// Unparseable header, unknown API, unsupported version or undecodable body.
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// What the connection does with one handled request.
pub struct Answer {
    /// The response, if one is due (an acks=0 produce has none).
    pub response: Option<Frame>,
    /// How long the connection reads no further request: a client over its quota is muted
    /// after its response goes out, as Kafka mutes its channel (KIP-219).
    pub mute: Duration,
}

/// Handles one request frame. `scope` lives as long as the request: dropping it lets the
/// connection start its next one.
pub async fn dispatch(ctx: &Ctx, scope: RequestScope, frame: Bytes) -> Result<Answer, CloseReason> {
    let response = respond(ctx, &scope, frame).await?;
    Ok(Answer {
        response,
        mute: scope.throttled(),
    })
}

/// Decodes, handles and encodes one request; `Ok(None)` means no response is due.
async fn respond(
    ctx: &Ctx,
    scope: &RequestScope,
    frame: Bytes,
) -> Result<Option<Frame>, CloseReason> {
    let (raw_key, version, correlation_id) = peek_header(&frame)?;
    if raw_key == ApiKey::ApiVersions as i16 {
        let max = supported(scope.listener(), ApiKey::ApiVersions).map_or(0, |(_, max)| max);
        if version > max {
            // KIP-511: answer in v0 so the client can pick a version we speak.
            return Ok(Some(
                unsupported_api_versions(scope.listener(), correlation_id).into(),
            ));
        }
    }
    let Decoded {
        key,
        version,
        header,
        request,
    } = decode(scope.listener(), frame)?;
    // Kafka's request quota counts only time spent serving clients, not other brokers.
    let exempt = matches!(&request, RequestKind::WriteTxnMarkers(_))
        || matches!(&request, RequestKind::Fetch(f) if f.replica_id.0 >= 0 || f.replica_state.replica_id.0 >= 0);
    let started = Instant::now();
    let (handled, busy) = timed(handle(ctx, scope, &header, request)).await;
    let response = handled?;
    metrics::record_request(key, started.elapsed());
    if !exempt {
        let throttle = ctx.quotas.record_busy_time(
            &ctx.controller.image(),
            QuotaClient::of(scope, &header),
            busy,
            Instant::now(),
        );
        scope.throttle(throttle);
    }
    let Some(mut response) = response else {
        return Ok(None);
    };
    raise_throttle_time(&mut response, throttle_ms(scope.throttled()));
    encode_response(key, version, correlation_id, &response).map(Some)
}

/// A request frame's API key, version and correlation id, read without decoding it.
pub fn peek_header(frame: &[u8]) -> Result<(i16, i16, i32), CloseReason> {
    if frame.len() < 8 {
        return Err(CloseReason::Malformed(
            "frame shorter than a request header".into(),
        ));
    }
    Ok((
        i16::from_be_bytes([frame[0], frame[1]]),
        i16::from_be_bytes([frame[2], frame[3]]),
        i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    ))
}

/// A decoded request.
pub struct Decoded {
    /// Its API.
    pub key: ApiKey,
    /// The version it was sent at.
    pub version: i16,
    /// Its header.
    pub header: RequestHeader,
    /// Its body.
    pub request: RequestKind,
}

/// Decodes a request frame of an API and version served on `listener`.
pub fn decode(listener: Listener, frame: Bytes) -> Result<Decoded, CloseReason> {
    let (raw_key, version, _) = peek_header(&frame)?;
    let key = ApiKey::try_from(raw_key)
        .map_err(|_| CloseReason::Malformed(format!("unknown api key {raw_key}")))?;
    let (min, max) = supported(listener, key)
        .ok_or_else(|| CloseReason::Malformed(format!("unsupported api {key:?}")))?;
    if version < min || version > max || (key == ApiKey::Produce && version < MIN_DECODED_PRODUCE) {
        return Err(CloseReason::Malformed(format!(
            "{key:?} v{version} is not supported"
        )));
    }
    let mut body = frame;
    let header =
        decode_guarded(|| RequestHeader::decode(&mut body, key.request_header_version(version)))?;
    let request = decode_guarded(|| RequestKind::decode(key, &mut body, version))?;
    Ok(Decoded {
        key,
        version,
        header,
        request,
    })
}

/// Runs `work`, also answering how long it spent being polled: the time this request kept a
/// runtime thread busy (what Kafka's `request_percentage` quota measures), not the time it
/// waited for replicas, the log or the controller.
async fn timed<F: std::future::Future>(work: F) -> (F::Output, Duration) {
    let mut work = std::pin::pin!(work);
    let mut busy = Duration::ZERO;
    let output = std::future::poll_fn(|cx| {
        let polled = Instant::now();
        let poll = work.as_mut().poll(cx);
        busy += polled.elapsed();
        poll
    })
    .await;
    (output, busy)
}

/// The one `match` on the API: each request to its handler. `Ok(None)`: no response is due
/// (an acks=0 produce).
async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    request: RequestKind,
) -> Result<Option<ResponseKind>, CloseReason> {
    let response: ResponseKind = match request {
        RequestKind::Produce(r) => match handlers::produce::handle(ctx, scope, header, r).await {
            Some(resp) => resp.into(),
            None => return Ok(None),
        },
        RequestKind::Fetch(r) => handlers::fetch::handle(ctx, scope, header, r).await.into(),
        RequestKind::ListOffsets(r) => handlers::list_offsets::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::Metadata(r) => handlers::metadata::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::ApiVersions(r) => handlers::api_versions::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::CreateTopics(r) => handlers::create_topics::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::DeleteTopics(r) => handlers::delete_topics::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::InitProducerId(r) => handlers::init_producer_id::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::OffsetForLeaderEpoch(r) => {
            handlers::offset_for_leader_epoch::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::DescribeConfigs(r) => {
            handlers::describe_configs::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::CreatePartitions(r) => {
            handlers::create_partitions::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::DeleteRecords(r) => handlers::delete_records::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::ElectLeaders(r) => handlers::elect_leaders::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::AlterPartitionReassignments(r) => {
            handlers::alter_partition_reassignments::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::DescribeLogDirs(r) => {
            handlers::describe_log_dirs::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::ListPartitionReassignments(r) => {
            handlers::list_partition_reassignments::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::AlterConfigs(r) => handlers::alter_configs::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::IncrementalAlterConfigs(r) => {
            handlers::incremental_alter_configs::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::DescribeClientQuotas(r) => {
            handlers::describe_client_quotas::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::AlterClientQuotas(r) => {
            handlers::alter_client_quotas::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::DescribeCluster(r) => {
            handlers::describe_cluster::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::ConsumerGroupHeartbeat(r) => {
            handlers::consumer_group_heartbeat::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            handlers::consumer_group_describe::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::FindCoordinator(r) => {
            handlers::find_coordinator::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::JoinGroup(r) => handlers::join_group::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::SyncGroup(r) => handlers::sync_group::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::Heartbeat(r) => handlers::heartbeat::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::LeaveGroup(r) => handlers::leave_group::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::OffsetCommit(r) => handlers::offset_commit::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::OffsetFetch(r) => handlers::offset_fetch::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::ListGroups(r) => handlers::list_groups::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::DescribeGroups(r) => handlers::describe_groups::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::DeleteGroups(r) => handlers::delete_groups::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::OffsetDelete(r) => handlers::offset_delete::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::AddPartitionsToTxn(r) => {
            handlers::add_partitions_to_txn::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::AddOffsetsToTxn(r) => {
            handlers::add_offsets_to_txn::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::TxnOffsetCommit(r) => {
            handlers::txn_offset_commit::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::EndTxn(r) => handlers::end_txn::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::WriteTxnMarkers(r) => {
            handlers::write_txn_markers::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::DescribeTransactions(r) => {
            handlers::describe_transactions::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::ListTransactions(r) => {
            handlers::list_transactions::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::DescribeProducers(r) => {
            handlers::describe_producers::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::DescribeQuorum(r) => handlers::describe_quorum::handle(ctx, scope, header, r)
            .await
            .into(),
        // The SASL exchange is over once requests get here (see authenticator.rs).
        RequestKind::SaslHandshake(_) => handlers::sasl_handshake::out_of_turn().into(),
        RequestKind::SaslAuthenticate(_) => handlers::sasl_authenticate::out_of_turn().into(),
        RequestKind::DescribeUserScramCredentials(r) => {
            handlers::describe_user_scram_credentials::handle(ctx, scope, header, r)
                .await
                .into()
        }
        RequestKind::CreateAcls(r) => handlers::create_acls::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::DescribeAcls(r) => handlers::describe_acls::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::DeleteAcls(r) => handlers::delete_acls::handle(ctx, scope, header, r)
            .await
            .into(),
        RequestKind::AlterUserScramCredentials(r) => {
            handlers::alter_user_scram_credentials::handle(ctx, scope, header, r)
                .await
                .into()
        }
        other => {
            return Err(CloseReason::Malformed(format!("no handler for {other:?}")));
        }
    };
    Ok(Some(response))
}

/// Raises a response's `throttle_time_ms` to `ms`: a request quota throttles every answer,
/// and a byte-rate quota's throttle may be longer than the handler's own.
fn raise_throttle_time(response: &mut ResponseKind, ms: i32) {
    if ms == 0 {
        return;
    }
    macro_rules! raise {
        ($($api:ident),* $(,)?) => {
            match response {
                $(ResponseKind::$api(r) => r.throttle_time_ms = r.throttle_time_ms.max(ms),)*
                _ => {}
            }
        };
    }
    raise!(
        Produce,
        Fetch,
        ListOffsets,
        Metadata,
        ApiVersions,
        CreateTopics,
        DeleteTopics,
        InitProducerId,
        OffsetForLeaderEpoch,
        DescribeConfigs,
        CreatePartitions,
        DeleteRecords,
        ElectLeaders,
        AlterPartitionReassignments,
        DescribeLogDirs,
        ListPartitionReassignments,
        AlterConfigs,
        IncrementalAlterConfigs,
        DescribeClientQuotas,
        AlterClientQuotas,
        DescribeCluster,
        ConsumerGroupHeartbeat,
        ConsumerGroupDescribe,
        FindCoordinator,
        JoinGroup,
        SyncGroup,
        Heartbeat,
        LeaveGroup,
        OffsetCommit,
        OffsetFetch,
        ListGroups,
        DescribeGroups,
        DeleteGroups,
        OffsetDelete,
        AddPartitionsToTxn,
        AddOffsetsToTxn,
        TxnOffsetCommit,
        EndTxn,
        DescribeTransactions,
        ListTransactions,
        DescribeProducers,
    );
}

/// Runs a decoder with the allocation guard on (see `decode_guard`).
fn decode_guarded<T>(decode: impl FnOnce() -> anyhow::Result<T>) -> Result<T, CloseReason> {
    crate::decode_guard::with_guard(decode).map_err(|e| CloseReason::Malformed(e.to_string()))
}

fn frame_with<F: FnOnce(&mut BytesMut) -> anyhow::Result<()>>(
    f: F,
) -> Result<BytesMut, CloseReason> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    f(&mut buf).map_err(|e| CloseReason::Malformed(format!("encoding response: {e}")))?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

pub fn encode_response(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> Result<Frame, CloseReason> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = key.response_header_version(version);
    match response {
        // The record batches are sent as read, not copied into the frame (see frame.rs).
        ResponseKind::Fetch(fetch) => frame::encode(fetched_batches(fetch), |buf| {
            header.encode(buf, header_version)?;
            fetch.encode(buf, version)
        })
        .map_err(|e| CloseReason::Malformed(format!("encoding response: {e}"))),
        other => frame_with(|buf| {
            header.encode(buf, header_version)?;
            other.encode(buf, version)
        })
        .map(Frame::from),
    }
}

/// A Fetch response's record batches, in the order they are encoded.
fn fetched_batches(fetch: &kafka_protocol::messages::FetchResponse) -> Vec<Bytes> {
    fetch
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter_map(|p| p.records.clone())
        .collect()
}

fn unsupported_api_versions(listener: Listener, correlation_id: i32) -> BytesMut {
    let body = ApiVersionsResponse::default()
        .with_error_code(kafka_protocol::error::ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_versions(listener));
    let encoded = frame_with(|buf| {
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(buf, 0)?;
        body.encode(buf, 0)
    });
    // Encoding a fixed v0 body cannot fail; fall back to an empty frame rather than panic.
    encoded.unwrap_or_else(|_| BytesMut::from(&[0u8, 0, 0, 0][..]))
}
