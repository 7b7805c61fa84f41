//! The controller error type.

/// What can go wrong talking to the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// Local storage failed.
    #[error("storage: {0}")]
    Storage(#[from] sluice_storage::StorageError),
    /// Stored Raft state could not be (de)serialised.
    #[error("codec: {0}")]
    Codec(#[from] serde_json::Error),
    /// Raft refused or failed the operation (no leader, no quorum, shutting down).
    #[error("raft: {0}")]
    Raft(String),
    /// The configuration asks for something this controller cannot do.
    #[error("config: {0}")]
    Config(String),
    /// The controller did not become ready in time.
    #[error("timed out: {0}")]
    Timeout(String),
}
