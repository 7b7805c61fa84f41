//! What the store reports for metrics: RocksDB properties and write stalls.

use super::*;

impl Store {
    /// Write stalls so far (delays plus stops): the write buffer manager's, from
    /// `db-write-stall-stats`, plus every column family's totals from `cf-write-stall-stats`.
    pub fn write_stalls(&self) -> u64 {
        let db_wide = self
            .db
            .property_value("rocksdb.db-write-stall-stats")
            .ok()
            .flatten()
            .map(|s| stall_count(&s, |k| k.ends_with("-stops") || k.ends_with("-delays")))
            .unwrap_or(0);
        let per_cf: u64 = self
            .cf_names()
            .iter()
            .filter_map(|n| self.db.cf_handle(n))
            .filter_map(|cf| {
                self.db
                    .property_value_cf(&cf, "rocksdb.cf-write-stall-stats")
                    .ok()
                    .flatten()
            })
            .map(|s| stall_count(&s, |k| k == "total-delays" || k == "total-stops"))
            .sum();
        db_wide + per_cf
    }

    /// Estimated bytes a partition takes: its live SST data plus its memtables.
    pub fn partition_size_estimate(&self, log: &PartitionLog) -> u64 {
        let Ok(cf) = self.partition_cf(log) else {
            return 0;
        };
        [
            "rocksdb.estimate-live-data-size",
            "rocksdb.cur-size-all-mem-tables",
        ]
        .iter()
        .filter_map(|p| self.db.property_int_value_cf(&cf, *p).ok().flatten())
        .sum()
    }

    /// A RocksDB integer property summed over all column families (e.g. memtable size).
    pub fn int_property(&self, name: &str) -> u64 {
        self.cf_names()
            .iter()
            .filter_map(|n| self.db.cf_handle(n))
            .filter_map(|cf| self.db.property_int_value_cf(&cf, name).ok().flatten())
            .sum()
    }
}

/// Sums the counts of the entries `wanted` picks from a RocksDB write-stall stats string
/// ("Write Stall (count): name: N, name: N, ...").
fn stall_count(stats: &str, wanted: impl Fn(&str) -> bool) -> u64 {
    let body = stats.split_once("(count):").map_or(stats, |(_, b)| b);
    body.split([',', '\n'])
        .filter_map(|kv| kv.split_once(':'))
        .filter(|(k, _)| wanted(k.trim()))
        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod stall_tests {
    use super::stall_count;

    #[test]
    fn write_stall_stats_strings_are_read_as_rocksdb_prints_them() {
        let db = "Write Stall (count): write-buffer-manager-limit-stops: 4\n";
        assert_eq!(stall_count(db, |k| k.ends_with("-stops")), 4);
        let cf = "Write Stall (count): l0-file-count-limit-delays: 2, memtable-limit-stops: 1, \
                  total-delays: 2, total-stops: 1\n";
        assert_eq!(
            stall_count(cf, |k| k == "total-delays" || k == "total-stops"),
            3
        );
    }
}
