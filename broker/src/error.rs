//! BrokerError and the single mapping from every failure to a Kafka error code.

use kafka_protocol::error::ResponseError as Code;
use sluice_controller::{ControllerError, MetadataError};
use sluice_storage::{AppendError, StorageError};

/// A failure that a client sees as a Kafka error code (plus, where the API has one, a message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// UNKNOWN_TOPIC_OR_PARTITION
    #[error("This server does not host this topic-partition.")]
    UnknownTopicOrPartition,
    /// UNKNOWN_TOPIC_ID
    #[error("This server does not host this topic ID.")]
    UnknownTopicId,
    /// NOT_LEADER_OR_FOLLOWER
    #[error("This server is not the leader for that topic-partition.")]
    NotLeaderOrFollower,
    /// MISMATCHED_ENDPOINT_TYPE: brokers asked on the controller listener, or the reverse.
    #[error("The request was sent to an endpoint of the wrong type.")]
    MismatchedEndpointType,
    /// CORRUPT_MESSAGE
    #[error("the record batch failed its CRC check")]
    CorruptMessage,
    /// INVALID_RECORD
    #[error("{0}")]
    InvalidRecord(String),
    /// INVALID_RECORD for some records of a batch (KIP-467): their indexes in it, and why.
    #[error(
        "One or more records have been rejected due to {} record errors in total: {}",
        .indexes.len(),
        .reason
    )]
    InvalidRecords {
        /// Index of each rejected record in its batch.
        indexes: Vec<i32>,
        /// What is wrong with every one of them.
        reason: String,
    },
    /// MESSAGE_TOO_LARGE
    #[error("the record batch is larger than max.message.bytes")]
    MessageTooLarge,
    /// OUT_OF_ORDER_SEQUENCE_NUMBER
    #[error("out of order sequence number")]
    OutOfOrderSequence,
    /// DUPLICATE_SEQUENCE_NUMBER: appended long ago, offsets forgotten
    #[error("duplicate sequence number")]
    DuplicateSequence,
    /// INVALID_PRODUCER_EPOCH
    #[error("producer epoch is stale")]
    InvalidProducerEpoch,
    /// KAFKA_STORAGE_ERROR
    #[error("storage error: {0}")]
    Storage(String),
    /// NOT_ENOUGH_REPLICAS
    #[error("fewer in-sync replicas than min.insync.replicas")]
    NotEnoughReplicas,
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND: written, but the ISR shrank below
    /// `min.insync.replicas` before confirming it.
    #[error("the record was written but the ISR shrank below min.insync.replicas")]
    NotEnoughReplicasAfterAppend,
    /// REQUEST_TIMED_OUT: written, but the ISR did not confirm it within the request's
    /// timeout (Kafka's expired delayed produce).
    #[error("the record was written but the ISR did not confirm it in time")]
    ReplicationTimedOut,
    /// INVALID_UPDATE_VERSION
    #[error("the partition changed meanwhile")]
    InvalidUpdateVersion,
    /// ELECTION_NOT_NEEDED
    #[error("Leader election not needed for topic partition.")]
    ElectionNotNeeded,
    /// NO_REASSIGNMENT_IN_PROGRESS
    #[error("No partition reassignment is in progress.")]
    NoReassignmentInProgress,
    /// PREFERRED_LEADER_NOT_AVAILABLE
    #[error("{0}")]
    PreferredLeaderNotAvailable(String),
    /// OFFSET_OUT_OF_RANGE
    #[error("offset out of range")]
    OffsetOutOfRange,
    /// FENCED_LEADER_EPOCH
    #[error("the leader epoch in the request is older than the broker's")]
    FencedLeaderEpoch,
    /// UNKNOWN_LEADER_EPOCH
    #[error("the leader epoch in the request is newer than the broker's")]
    UnknownLeaderEpoch,
    /// INVALID_TOPIC_EXCEPTION
    #[error("{0}")]
    InvalidTopic(String),
    /// TOPIC_AUTHORIZATION_FAILED
    #[error("Topic authorization failed.")]
    TopicAuthorizationFailed,
    /// GROUP_AUTHORIZATION_FAILED
    #[error("Group authorization failed.")]
    GroupAuthorizationFailed,
    /// CLUSTER_AUTHORIZATION_FAILED
    #[error("Cluster authorization failed.")]
    ClusterAuthorizationFailed,
    /// TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    #[error("Transactional Id authorization failed.")]
    TransactionalIdAuthorizationFailed,
    /// SECURITY_DISABLED: ACL requests to a broker without an authorizer.
    #[error("No Authorizer is configured.")]
    SecurityDisabled,
    /// SASL_AUTHENTICATION_FAILED
    #[error("{0}")]
    SaslAuthenticationFailed(String),
    /// UNSUPPORTED_SASL_MECHANISM
    #[error("{0}")]
    UnsupportedSaslMechanism(String),
    /// ILLEGAL_SASL_STATE: a SASL request out of turn.
    #[error("{0}")]
    IllegalSaslState(String),
    /// UNACCEPTABLE_CREDENTIAL: a SCRAM credential Kafka would not store.
    #[error("{0}")]
    UnacceptableCredential(String),
    /// DUPLICATE_RESOURCE: one request names a resource twice.
    #[error("{0}")]
    DuplicateResource(String),
    /// RESOURCE_NOT_FOUND
    #[error("{0}")]
    ResourceNotFound(String),
    /// TOPIC_ALREADY_EXISTS
    #[error("{0}")]
    TopicAlreadyExists(String),
    /// INVALID_PARTITIONS
    #[error("{0}")]
    InvalidPartitions(String),
    /// POLICY_VIOLATION
    #[error("{0}")]
    PolicyViolation(String),
    /// INVALID_REPLICATION_FACTOR
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// INVALID_REPLICA_ASSIGNMENT
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// INVALID_CONFIG
    #[error("{0}")]
    InvalidConfig(String),
    /// INVALID_REQUEST
    #[error("{0}")]
    InvalidRequest(String),
    /// UNSUPPORTED_VERSION: a feature this broker does not have (yet).
    #[error("{0}")]
    UnsupportedVersion(String),
    /// LEADER_NOT_AVAILABLE
    #[error("leader not available")]
    LeaderNotAvailable,
    /// THROTTLING_QUOTA_EXCEEDED: the client's `controller_mutation_rate` is used up (KIP-599).
    #[error("The throttling quota has been exceeded.")]
    ThrottlingQuotaExceeded,
    /// NOT_CONTROLLER / REQUEST_TIMED_OUT: the controller could not commit the change.
    #[error("controller: {0}")]
    Controller(String),
    /// FETCH_SESSION_ID_NOT_FOUND
    #[error("fetch session not found")]
    FetchSessionIdNotFound,
    /// INVALID_FETCH_SESSION_EPOCH
    #[error("invalid fetch session epoch")]
    InvalidFetchSessionEpoch,
    /// The coordinator runtime could not serve the request here.
    #[error("{0}")]
    Coordinator(CoordinatorError),
    /// A group coordinator's refusal.
    #[error("{0}")]
    Group(GroupError),
    /// A transaction coordinator's refusal.
    #[error("{0}")]
    Txn(TxnError),
    /// UNSTABLE_OFFSET_COMMIT: an open transaction has offsets of the group pending.
    #[error("There are unstable offsets that need to be cleared.")]
    UnstableOffsetCommit,
}

/// Why a transaction coordinator refused a request: the transaction protocol's own errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// PRODUCER_FENCED: a newer instance of the transactional id has the epoch.
    #[error(
        "There is a newer producer with the same transactionalId which fences the current one."
    )]
    ProducerFenced,
    /// TRANSACTION_COORDINATOR_FENCED: a marker from a coordinator that lost the
    /// transactional id to a newer one.
    #[error("The transaction coordinator sending a WriteTxnMarker is no longer the current coordinator for a given producer.")]
    CoordinatorFenced,
    /// INVALID_PRODUCER_ID_MAPPING: the producer id is not the transactional id's.
    #[error("The producer attempted to use a producer id which is not currently assigned to its transactional id.")]
    InvalidProducerIdMapping,
    /// INVALID_TXN_STATE: the request does not fit the transaction's state.
    #[error("The producer attempted a transactional operation in an invalid state.")]
    InvalidTxnState,
    /// CONCURRENT_TRANSACTIONS: the previous transaction is still being completed (retriable).
    #[error("The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing.")]
    ConcurrentTransactions,
    /// INVALID_TRANSACTION_TIMEOUT: outside (0, transaction.max.timeout.ms].
    #[error("The transaction timeout is larger than the maximum value allowed by the broker (as configured by transaction.max.timeout.ms).")]
    InvalidTransactionTimeout,
    /// TRANSACTIONAL_ID_NOT_FOUND (DescribeTransactions).
    #[error("The transactionalId could not be found.")]
    TransactionalIdNotFound,
    /// The coordinator runtime could not serve the transactional id here.
    #[error("{0}")]
    Coordinator(CoordinatorError),
}

impl From<CoordinatorError> for TxnError {
    fn from(e: CoordinatorError) -> Self {
        Self::Coordinator(e)
    }
}

impl From<TxnError> for BrokerError {
    fn from(e: TxnError) -> Self {
        match e {
            TxnError::Coordinator(c) => Self::Coordinator(c),
            other => Self::Txn(other),
        }
    }
}

/// Why a group coordinator refused a request: the group protocol's own errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// UNKNOWN_MEMBER_ID
    #[error("The coordinator is not aware of this member.")]
    UnknownMemberId,
    /// ILLEGAL_GENERATION
    #[error("The generation id provided in the request is not the current generation.")]
    IllegalGeneration,
    /// REBALANCE_IN_PROGRESS
    #[error("The group is rebalancing, so a rejoin is needed.")]
    RebalanceInProgress,
    /// MEMBER_ID_REQUIRED
    #[error("The group member needs to have a valid member id before actually entering a consumer group.")]
    MemberIdRequired,
    /// INVALID_SESSION_TIMEOUT
    #[error("The session timeout is not within the range allowed by the broker.")]
    InvalidSessionTimeout,
    /// INCONSISTENT_GROUP_PROTOCOL
    #[error(
        "The group member's supported protocols are incompatible with those of existing members."
    )]
    InconsistentGroupProtocol,
    /// GROUP_ID_NOT_FOUND
    #[error("The group id does not exist.")]
    GroupIdNotFound,
    /// NON_EMPTY_GROUP
    #[error("The group is not empty.")]
    NonEmptyGroup,
    /// GROUP_SUBSCRIBED_TO_TOPIC
    #[error("The consumer group is actively subscribed to the topic.")]
    GroupSubscribedToTopic,
    /// The coordinator runtime could not serve the group here.
    #[error("{0}")]
    Coordinator(CoordinatorError),
    /// STALE_MEMBER_EPOCH
    #[error("The member epoch is stale.")]
    StaleMemberEpoch,
    /// FENCED_MEMBER_EPOCH
    #[error("The member epoch is fenced by the group coordinator.")]
    FencedMemberEpoch,
    /// INVALID_REGULAR_EXPRESSION
    #[error("The regular expression is not valid.")]
    InvalidRegularExpression,
    /// INVALID_REQUEST: a consumer-group heartbeat that names no subscription.
    #[error("A new member must subscribe to topics or a pattern.")]
    NoSubscription,
}

/// Why the coordinator runtime could not serve a request for one of its shards; every
/// coordinator (groups, later transactions and share-group state) answers these alike, and
/// clients react by finding the coordinator again and retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CoordinatorError {
    /// NOT_COORDINATOR: another node leads the shard's partition (or this one just lost it).
    #[error("This is not the correct coordinator.")]
    NotCoordinator,
    /// COORDINATOR_LOAD_IN_PROGRESS: this node leads it but has not replayed it yet.
    #[error("The coordinator is loading and hence can't process requests.")]
    LoadInProgress,
    /// COORDINATOR_NOT_AVAILABLE: no leader, or the write was not replicated in time.
    #[error("The coordinator is not available.")]
    NotAvailable,
}

impl CoordinatorError {
    fn kafka_code(self) -> Code {
        match self {
            Self::NotCoordinator => Code::NotCoordinator,
            Self::LoadInProgress => Code::CoordinatorLoadInProgress,
            Self::NotAvailable => Code::CoordinatorNotAvailable,
        }
    }
}

impl From<CoordinatorError> for BrokerError {
    fn from(e: CoordinatorError) -> Self {
        Self::Coordinator(e)
    }
}

impl From<CoordinatorError> for GroupError {
    fn from(e: CoordinatorError) -> Self {
        Self::Coordinator(e)
    }
}

/// The Kafka error code of a group outcome (0 for none).
pub fn group_code(error: Option<GroupError>) -> i16 {
    error.map_or(0, |e| BrokerError::Group(e).code())
}

impl BrokerError {
    /// The Kafka error code.
    pub fn code(&self) -> i16 {
        let code = match self {
            Self::UnknownTopicOrPartition => Code::UnknownTopicOrPartition,
            Self::UnknownTopicId => Code::UnknownTopicId,
            Self::MismatchedEndpointType => Code::MismatchedEndpointType,
            Self::NotLeaderOrFollower => Code::NotLeaderOrFollower,
            Self::CorruptMessage => Code::CorruptMessage,
            Self::InvalidRecord(_) | Self::InvalidRecords { .. } => Code::InvalidRecord,
            Self::MessageTooLarge => Code::MessageTooLarge,
            Self::OutOfOrderSequence => Code::OutOfOrderSequenceNumber,
            Self::DuplicateSequence => Code::DuplicateSequenceNumber,
            Self::InvalidProducerEpoch => Code::InvalidProducerEpoch,
            Self::Storage(_) => Code::KafkaStorageError,
            Self::NotEnoughReplicas => Code::NotEnoughReplicas,
            Self::NotEnoughReplicasAfterAppend => Code::NotEnoughReplicasAfterAppend,
            Self::ReplicationTimedOut => Code::RequestTimedOut,
            Self::InvalidUpdateVersion => Code::InvalidUpdateVersion,
            Self::ElectionNotNeeded => Code::ElectionNotNeeded,
            Self::NoReassignmentInProgress => Code::NoReassignmentInProgress,
            Self::PreferredLeaderNotAvailable(_) => Code::PreferredLeaderNotAvailable,
            Self::OffsetOutOfRange => Code::OffsetOutOfRange,
            Self::FencedLeaderEpoch => Code::FencedLeaderEpoch,
            Self::UnknownLeaderEpoch => Code::UnknownLeaderEpoch,
            Self::InvalidTopic(_) => Code::InvalidTopicException,
            Self::TopicAuthorizationFailed => Code::TopicAuthorizationFailed,
            Self::GroupAuthorizationFailed => Code::GroupAuthorizationFailed,
            Self::ClusterAuthorizationFailed => Code::ClusterAuthorizationFailed,
            Self::TransactionalIdAuthorizationFailed => Code::TransactionalIdAuthorizationFailed,
            Self::SecurityDisabled => Code::SecurityDisabled,
            Self::SaslAuthenticationFailed(_) => Code::SaslAuthenticationFailed,
            Self::UnsupportedSaslMechanism(_) => Code::UnsupportedSaslMechanism,
            Self::IllegalSaslState(_) => Code::IllegalSaslState,
            Self::UnacceptableCredential(_) => Code::UnacceptableCredential,
            Self::DuplicateResource(_) => Code::DuplicateResource,
            Self::ResourceNotFound(_) => Code::ResourceNotFound,
            Self::TopicAlreadyExists(_) => Code::TopicAlreadyExists,
            Self::InvalidPartitions(_) => Code::InvalidPartitions,
            Self::PolicyViolation(_) => Code::PolicyViolation,
            Self::InvalidReplicationFactor(_) => Code::InvalidReplicationFactor,
            Self::InvalidReplicaAssignment(_) => Code::InvalidReplicaAssignment,
            Self::InvalidConfig(_) => Code::InvalidConfig,
            Self::InvalidRequest(_) => Code::InvalidRequest,
            Self::UnsupportedVersion(_) => Code::UnsupportedVersion,
            Self::LeaderNotAvailable => Code::LeaderNotAvailable,
            Self::ThrottlingQuotaExceeded => Code::ThrottlingQuotaExceeded,
            Self::Controller(_) => Code::RequestTimedOut,
            Self::FetchSessionIdNotFound => Code::FetchSessionIdNotFound,
            Self::InvalidFetchSessionEpoch => Code::InvalidFetchSessionEpoch,
            Self::Coordinator(e) => e.kafka_code(),
            Self::Group(e) => match e {
                GroupError::UnknownMemberId => Code::UnknownMemberId,
                GroupError::IllegalGeneration => Code::IllegalGeneration,
                GroupError::RebalanceInProgress => Code::RebalanceInProgress,
                GroupError::MemberIdRequired => Code::MemberIdRequired,
                GroupError::InvalidSessionTimeout => Code::InvalidSessionTimeout,
                GroupError::InconsistentGroupProtocol => Code::InconsistentGroupProtocol,
                GroupError::GroupIdNotFound => Code::GroupIdNotFound,
                GroupError::NonEmptyGroup => Code::NonEmptyGroup,
                GroupError::GroupSubscribedToTopic => Code::GroupSubscribedToTopic,
                GroupError::Coordinator(e) => e.kafka_code(),
                GroupError::StaleMemberEpoch => Code::StaleMemberEpoch,
                GroupError::FencedMemberEpoch => Code::FencedMemberEpoch,
                GroupError::InvalidRegularExpression => Code::InvalidRegularExpression,
                GroupError::NoSubscription => Code::InvalidRequest,
            },
            Self::Txn(e) => match e {
                TxnError::ProducerFenced => Code::ProducerFenced,
                TxnError::CoordinatorFenced => Code::TransactionCoordinatorFenced,
                TxnError::InvalidProducerIdMapping => Code::InvalidProducerIdMapping,
                TxnError::InvalidTxnState => Code::InvalidTxnState,
                TxnError::ConcurrentTransactions => Code::ConcurrentTransactions,
                TxnError::InvalidTransactionTimeout => Code::InvalidTransactionTimeout,
                TxnError::TransactionalIdNotFound => Code::TransactionalIdNotFound,
                TxnError::Coordinator(e) => e.kafka_code(),
            },
            Self::UnstableOffsetCommit => Code::UnstableOffsetCommit,
        };
        code.code()
    }

    /// The message for APIs that carry one.
    pub fn message(&self) -> kafka_protocol::protocol::StrBytes {
        kafka_protocol::protocol::StrBytes::from_string(self.to_string())
    }

    /// The error another broker's transaction coordinator answered with, as this broker's
    /// own (the inverse of `code` for what a coordinator answers; anything else counts as
    /// the coordinator being unavailable, which callers retry).
    pub fn from_coordinator_code(code: i16) -> Self {
        let txn = [
            TxnError::ProducerFenced,
            TxnError::InvalidProducerIdMapping,
            TxnError::InvalidTxnState,
            TxnError::ConcurrentTransactions,
        ];
        let coordinator = [
            CoordinatorError::NotCoordinator,
            CoordinatorError::LoadInProgress,
            CoordinatorError::NotAvailable,
        ];
        txn.into_iter()
            .map(Self::Txn)
            .chain(coordinator.into_iter().map(Self::Coordinator))
            .chain([Self::InvalidProducerEpoch])
            .find(|e| e.code() == code)
            .unwrap_or(Self::Coordinator(CoordinatorError::NotAvailable))
    }
}

/// The error code of a result (0 for success).
pub fn code_of<T>(r: &Result<T, BrokerError>) -> i16 {
    r.as_ref().err().map(BrokerError::code).unwrap_or(0)
}

impl From<MetadataError> for BrokerError {
    fn from(e: MetadataError) -> Self {
        match e {
            MetadataError::TopicAlreadyExists(n) => {
                Self::TopicAlreadyExists(format!("Topic '{n}' already exists."))
            }
            MetadataError::UnknownTopic(_) => Self::UnknownTopicOrPartition,
            MetadataError::InvalidTopic(m) => Self::InvalidTopic(m),
            MetadataError::InvalidPartitions(m) => Self::InvalidPartitions(m),
            MetadataError::PolicyViolation(m) => Self::PolicyViolation(m),
            MetadataError::InvalidReplicationFactor(m) => Self::InvalidReplicationFactor(m),
            MetadataError::InvalidReplicaAssignment(m) => Self::InvalidReplicaAssignment(m),
            MetadataError::InvalidConfig(m) => Self::InvalidConfig(m),
            MetadataError::FencedLeaderEpoch => Self::FencedLeaderEpoch,
            MetadataError::InvalidUpdateVersion => Self::InvalidUpdateVersion,
            MetadataError::IneligibleReplica(m) => Self::InvalidRequest(m),
            MetadataError::ElectionNotNeeded => Self::ElectionNotNeeded,
            MetadataError::LeaderNotAvailable(m) => Self::PreferredLeaderNotAvailable(m),
            MetadataError::NoReassignmentInProgress => Self::NoReassignmentInProgress,
        }
    }
}

impl From<AppendError> for BrokerError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::OutOfOrderSequence => Self::OutOfOrderSequence,
            AppendError::DuplicateSequence => Self::DuplicateSequence,
            AppendError::InvalidProducerEpoch => Self::InvalidProducerEpoch,
            AppendError::CoordinatorFenced => Self::Txn(TxnError::CoordinatorFenced),
            AppendError::TransactionEnded => Self::Txn(TxnError::InvalidTxnState),
            AppendError::UnknownPartition | AppendError::NotLeader => Self::NotLeaderOrFollower,
            AppendError::Storage(m) => Self::Storage(m),
        }
    }
}

impl From<StorageError> for BrokerError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::CorruptBatch => Self::CorruptMessage,
            StorageError::InvalidBatch(m) => Self::InvalidRecord(m.to_string()),
            StorageError::RecordsTooLarge => Self::InvalidRecord(e.to_string()),
            StorageError::UnknownPartition(_) => Self::NotLeaderOrFollower,
            other => Self::Storage(other.to_string()),
        }
    }
}

impl From<ControllerError> for BrokerError {
    fn from(e: ControllerError) -> Self {
        Self::Controller(e.to_string())
    }
}
