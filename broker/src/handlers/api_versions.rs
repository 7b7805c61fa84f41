//! ApiVersions: the APIs and versions this broker speaks, and the table dispatch checks
//! every request against.

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use crate::context::Ctx;
use crate::request_scope::{Listener, RequestScope};

/// Lists every supported API (unsupported request versions are answered in dispatch) and,
/// from v3, the cluster's features.
pub async fn handle(
    _ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    _req: ApiVersionsRequest,
) -> ApiVersionsResponse {
    // Java clients before 3.9 (ApiVersions v3) refuse a version range starting at 0 and
    // drop the connection, so below v4 those features are left out, as Kafka does.
    let old_client = header.request_api_version < 4;
    let supported = FEATURES
        .iter()
        .filter(|f| !(old_client && f.min == 0))
        .map(|f| {
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str(f.name))
                .with_min_version(f.min)
                .with_max_version(f.level)
        })
        .collect();
    // A feature at level 0 is not finalized: Kafka lists none such.
    let finalized = FEATURES
        .iter()
        .filter(|f| f.level > 0)
        .map(|f| {
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_static_str(f.name))
                .with_min_version_level(f.level)
                .with_max_version_level(f.level)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_api_keys(api_versions(scope.listener()))
        .with_supported_features(supported)
        .with_finalized_features(finalized)
        .with_finalized_features_epoch(FEATURES_EPOCH)
}

/// A cluster feature: the lowest level a node supports, and the level every node supports
/// and the cluster runs at.
pub struct Feature {
    pub name: &'static str,
    pub min: i16,
    pub level: i16,
}

/// The cluster's features, as `kafka-features describe` shows them. Kafka's 4.x clients take
/// transaction version 2 (KIP-890 part 2) from here.
pub const FEATURES: &[Feature] = &[
    // 3.3-IV3 (the oldest KRaft metadata Kafka 4 reads) to 4.3-IV0: the metadata semantics
    // Sluice serves are those of Kafka 4.3.
    Feature {
        name: "metadata.version",
        min: 7,
        level: 30,
    },
    // A static voter set as Kafka sees it: voters change through Sluice's admin API, not
    // through AddRaftVoter / RemoveRaftVoter (KIP-853).
    Feature {
        name: "kraft.version",
        min: 0,
        level: 0,
    },
    // The consumer group protocol of KIP-848.
    Feature {
        name: "group.version",
        min: 0,
        level: 1,
    },
    Feature {
        name: "transaction.version",
        min: 0,
        level: 2,
    },
];

/// The features never change while a node runs; clients read them again only when this
/// grows.
const FEATURES_EPOCH: i64 = 1;

/// The APIs and versions Sluice serves: (key, min, max). Versions outside these are refused.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    // Produce v0-2 is advertised but refused: librdkafka < 2.11.1 disables compression when
    // the advertised minimum is 3.
    // v12 is a transaction version 2 client's (the leader adds partitions to transactions);
    // from v13 (Produce) and v13 (Fetch) topics are named by id.
    (ApiKey::Produce, 0, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // The last versions of these are transaction version 2's (KIP-890 part 2).
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeQuorum, 0, 2),
    // After v0, SASL tokens follow as bare frames; after v1, in SaslAuthenticate requests.
    // librdkafka looks for v0 to know a broker speaks SASL at all.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
];

/// What the controller listener serves: what Kafka's tools ask a controller with
/// `--bootstrap-controller` (`kafka-metadata-quorum`, `kafka-features`, `kafka-cluster`).
const CONTROLLER_APIS: &[ApiKey] = &[
    ApiKey::ApiVersions,
    ApiKey::DescribeCluster,
    ApiKey::DescribeQuorum,
];

/// The APIs served on `listener`: (key, min, max).
fn served_on(listener: Listener) -> impl Iterator<Item = &'static (ApiKey, i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .filter(move |(k, _, _)| listener == Listener::Broker || CONTROLLER_APIS.contains(k))
}

/// The versions served of `key` on `listener` (min, max), if it is served there at all.
pub fn supported(listener: Listener, key: ApiKey) -> Option<(i16, i16)> {
    served_on(listener)
        .find(|(k, _, _)| *k == key)
        .map(|(_, lo, hi)| (*lo, *hi))
}

/// The ApiVersions list every response on `listener` carries.
pub fn api_versions(listener: Listener) -> Vec<ApiVersion> {
    served_on(listener)
        .map(|(k, lo, hi)| {
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version(*lo)
                .with_max_version(*hi)
        })
        .collect()
}
