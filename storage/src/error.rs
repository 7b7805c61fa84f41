//! The storage error type.

/// Everything that can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB refused an operation (I/O error, disk full, corruption).
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A record batch failed validation.
    #[error("invalid record batch: {0}")]
    InvalidBatch(&'static str),
    /// A compressed batch's records decompress to more than
    /// [`crate::records::MAX_RECORDS_BYTES`].
    #[error("records decompress to more than {} MiB", crate::records::MAX_RECORDS_BYTES >> 20)]
    RecordsTooLarge,
    /// A record batch's CRC-32C does not match its contents.
    #[error("record batch CRC mismatch")]
    CorruptBatch,
    /// The partition is not (or no longer) stored on this node.
    #[error("unknown partition {0}")]
    UnknownPartition(String),
    /// The data directory was written by a newer Sluice.
    #[error("data format version {found} is newer than this build supports ({supported})")]
    FormatTooNew {
        /// Version found on disk.
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },
    /// Stored bytes that should be ours are not in the expected shape.
    #[error("corrupt stored state: {0}")]
    CorruptState(String),
    /// The append pipeline has shut down.
    #[error("storage is shutting down")]
    ShuttingDown,
    /// Creating this many partitions would exhaust the open files limit (each partition
    /// created keeps a file open until the node restarts).
    #[error(
        "{needed} new partitions need as many open files, and only {left} are left under \
         this process's open files limit: raise it (ulimit -n) and restart the node"
    )]
    TooManyOpenFiles {
        /// Partitions to create.
        needed: usize,
        /// Descriptors left under the soft limit.
        left: usize,
    },
}

/// Result alias for storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
