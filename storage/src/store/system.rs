//! Node-local system tables, each a column family of its own (the controller keeps its
//! Raft log and state machine in them).

use super::*;

impl Store {
    /// A system table (created at open through [`StoreConfig::system_tables`]).
    pub fn system_table(&self, name: &str) -> Result<SystemTable> {
        let cf = system_cf(name);
        if self.db.cf_handle(&cf).is_none() {
            return Err(StorageError::UnknownPartition(cf));
        }
        Ok(SystemTable {
            db: self.db.clone(),
            cf,
        })
    }
}

/// A node-local key-value table in its own column family (used by the controller).
#[derive(Clone)]
pub struct SystemTable {
    db: Arc<DB>,
    cf: String,
}

impl SystemTable {
    fn cf(&self) -> Result<Arc<rocksdb::BoundColumnFamily<'_>>> {
        self.db
            .cf_handle(&self.cf)
            .ok_or_else(|| StorageError::UnknownPartition(self.cf.clone()))
    }

    /// Reads one key.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(&self.cf()?, key)?)
    }

    /// Writes and deletes in one atomic, synced write.
    pub fn write(&self, puts: &[(Vec<u8>, Vec<u8>)], deletes: &[Vec<u8>]) -> Result<()> {
        let cf = self.cf()?;
        let mut wb = WriteBatch::default();
        for (k, v) in puts {
            wb.put_cf(&cf, k, v);
        }
        for k in deletes {
            wb.delete_cf(&cf, k);
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        Ok(self.db.write_opt(&wb, &wo)?)
    }

    /// Deletes every key in `[from, to)`.
    pub fn delete_range(&self, from: &[u8], to: &[u8]) -> Result<()> {
        let cf = self.cf()?;
        let mut wb = WriteBatch::default();
        wb.delete_range_cf(&cf, from, to);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        Ok(self.db.write_opt(&wb, &wo)?)
    }

    /// Key-value pairs in `[from, to)`, in key order.
    pub fn range(&self, from: &[u8], to: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let cf = self.cf()?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(to.to_vec());
        let mut it = self.db.raw_iterator_cf_opt(&cf, ro);
        it.seek(from);
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            out.push((k.to_vec(), v.to_vec()));
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// The last key-value pair in the table, if any.
    pub fn last(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let cf = self.cf()?;
        let mut it = self.db.raw_iterator_cf(&cf);
        it.seek_to_last();
        let out = match (it.key(), it.value()) {
            (Some(k), Some(v)) => Some((k.to_vec(), v.to_vec())),
            _ => None,
        };
        it.status()?;
        Ok(out)
    }
}
