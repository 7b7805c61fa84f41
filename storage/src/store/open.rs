//! Opening the store: RocksDB options, the on-disk format version, and every partition's
//! state recovered from what is stored.

use super::*;

fn options(config: &StoreConfig) -> (Options, Options) {
    let cache = Cache::new_lru_cache(config.block_cache_size);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&cache);
    table.set_cache_index_and_filter_blocks(true);
    // No iterator read-ahead: RocksDB would read into a prefetch buffer and then copy each
    // block out of it, a third of a fetch's CPU; the kernel's own read-ahead of the file
    // keeps sequential reads cheap, and a block is about a batch, so reads are few.
    table.set_initial_auto_readahead_size(0);

    let mut cf = Options::default();
    cf.set_write_buffer_size(config.write_buffer_size);
    cf.set_arena_block_size(config.arena_block_size);
    cf.set_max_write_buffer_number(3);
    // Batches are usually compressed by the producer already.
    cf.set_compression_type(DBCompressionType::None);
    cf.set_block_based_table_factory(&table);

    let mut db = cf.clone();
    db.create_if_missing(true);
    db.create_missing_column_families(true);
    db.set_write_buffer_manager(&WriteBufferManager::new_write_buffer_manager(
        config.write_buffer_budget,
        false,
    ));
    db.set_max_background_jobs(2);
    db.set_keep_log_file_num(3);
    // A WAL file stays until every CF with data in it is flushed: past this total, RocksDB
    // flushes the CFs holding the oldest one, so removed data does not linger in the WAL.
    db.set_max_total_wal_size(128 << 20);
    db.set_max_open_files(4096);
    // Opening a CF's table files starts this many threads for that CF alone, even when it
    // has no files: at the default 16, a restart with 3,000 partitions started 45,000
    // threads, a quarter of its time (`PERF=1 compat-tests/bench/restart-probe`).
    // Partitions have few files each.
    db.set_max_file_opening_threads(1);
    db.set_skip_stats_update_on_db_open(true);
    (db, cf)
}

impl Store {
    /// Opens (or creates) the store in `dir` and recovers every partition's state.
    pub fn open(dir: &Path, config: &StoreConfig) -> Result<Self> {
        let (db_opts, cf_opts) = options(config);
        let mut names = DB::list_cf(&db_opts, dir).unwrap_or_default();
        for required in std::iter::once(META_CF.to_string())
            .chain(config.system_tables.iter().map(|t| system_cf(t)))
        {
            if !names.contains(&required) {
                names.push(required);
            }
        }
        let descriptors = names
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(n, cf_opts.clone()));
        let started = std::time::Instant::now();
        let db = Arc::new(DB::open_cf_descriptors(&db_opts, dir, descriptors)?);
        tracing::info!(
            column_families = names.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "rocksdb open"
        );
        let found_version = check_format(&db)?;

        let mut partitions = HashMap::new();
        for name in &names {
            if let Some(key) = PartitionKey::from_cf_name(name) {
                let log = recover_partition(&db, key)?;
                if found_version < 2 {
                    build_time_index(&db, &log)?;
                }
                partitions.insert(key, Arc::new(log));
            }
        }
        if found_version < FORMAT_VERSION {
            write_format_version(&db)?;
        }
        tracing::info!(partitions = partitions.len(), "storage recovered");

        let (tx, rx) = mpsc::channel(1024);
        let writer_db = db.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-appender".into())
            .spawn(move || appender::run(writer_db, rx))
            .map_err(|e| StorageError::CorruptState(format!("cannot start appender: {e}")))?;
        Ok(Self {
            db,
            cf_opts,
            partitions: RwLock::new(partitions),
            appender: Mutex::new(Some(tx)),
            appender_thread: Mutex::new(Some(thread)),
            maintenance: Mutex::new(()),
            system_cfs: config.system_tables.iter().map(|t| system_cf(t)).collect(),
        })
    }
}

/// The format version on disk (this build's for a new store); refuses newer ones.
fn check_format(db: &DB) -> Result<u32> {
    let meta = db
        .cf_handle(META_CF)
        .ok_or_else(|| StorageError::CorruptState("meta column family missing".into()))?;
    match db.get_cf(&meta, FORMAT_VERSION_KEY)? {
        Some(v) => {
            let bytes: [u8; 4] = v
                .as_slice()
                .try_into()
                .map_err(|_| StorageError::CorruptState("format version".into()))?;
            let found = u32::from_be_bytes(bytes);
            if found > FORMAT_VERSION {
                return Err(StorageError::FormatTooNew {
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            Ok(found)
        }
        None => {
            write_format_version(db)?;
            Ok(FORMAT_VERSION)
        }
    }
}

fn write_format_version(db: &DB) -> Result<()> {
    let meta = db
        .cf_handle(META_CF)
        .ok_or_else(|| StorageError::CorruptState("meta column family missing".into()))?;
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    let mut wb = WriteBatch::default();
    wb.put_cf(&meta, FORMAT_VERSION_KEY, FORMAT_VERSION.to_be_bytes());
    db.write_opt(&wb, &wo)?;
    Ok(())
}

/// Builds a partition's time index from its batch headers (upgrade from format 1).
fn build_time_index(db: &DB, log: &PartitionLog) -> Result<()> {
    let meta = db
        .cf_handle(META_CF)
        .ok_or_else(|| StorageError::CorruptState("meta column family missing".into()))?;
    let cf = db
        .cf_handle(log.cf_name())
        .ok_or_else(|| StorageError::UnknownPartition(log.cf_name().to_string()))?;
    let mut wb = WriteBatch::default();
    let mut max = i64::MIN;
    let mut it = db.raw_iterator_cf(&cf);
    it.seek_to_first();
    while let Some(value) = it.value() {
        let h = batch::parse_header(value)?;
        if h.max_timestamp > max {
            max = h.max_timestamp;
            wb.put_cf(
                &meta,
                log.meta_keys.time_index(max),
                h.base_offset.to_be_bytes(),
            );
        }
        it.next();
    }
    it.status()?;
    db.write(&wb)?;
    if let Ok(mut w) = log.writer.lock() {
        w.max_timestamp = max;
    }
    Ok(())
}

fn recover_partition(db: &DB, key: PartitionKey) -> Result<PartitionLog> {
    let keys = PartitionMetaKeys::new(&key);
    let meta = db
        .cf_handle(META_CF)
        .ok_or_else(|| StorageError::CorruptState("meta column family missing".into()))?;
    let cf = db
        .cf_handle(&key.cf_name())
        .ok_or_else(|| StorageError::UnknownPartition(key.cf_name()))?;

    let stored_start = db
        .get_cf(&meta, keys.log_start())?
        .map(|v| read_i64(&v))
        .transpose()?;
    let mut first = db.iterator_cf(&cf, IteratorMode::Start);
    let first_offset = match first.next() {
        Some(item) => offset_from_key(&item?.0),
        None => None,
    };
    let mut last = db.iterator_cf(&cf, IteratorMode::End);
    let next_offset = match last.next() {
        Some(item) => batch::parse_header(&item?.1)?.last_offset() + 1,
        None => stored_start.unwrap_or(0),
    };
    let log_start = stored_start.or(first_offset).unwrap_or(next_offset);

    let mut producers = ProducerStates::default();
    let prefix = keys.producers_prefix();
    for item in db.iterator_cf(&meta, IteratorMode::From(&prefix, Direction::Forward)) {
        let (k, v) = item?;
        let Some(pid) = k.strip_prefix(prefix.as_slice()) else {
            break;
        };
        producers.set(read_i64(pid)?, Some(ProducerEntry::decode(&v)?));
    }
    let epochs = db
        .get_cf(&meta, keys.leader_epochs())?
        .map(|v| appender::decode_epochs(&v))
        .unwrap_or_default();
    let max_timestamp = last_time_index_entry(db, &keys)?
        .map(|(ts, _)| ts)
        .unwrap_or(i64::MIN);
    let writer = WriterState {
        next_offset,
        producers,
        epochs,
        max_timestamp,
    };
    Ok(PartitionLog::new(key, writer, log_start))
}
