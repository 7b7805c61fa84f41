//! Incremental fetch sessions (KIP-227): the broker remembers what a client fetches, so later
//! requests send only changes and responses carry only partitions with something new.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use uuid::Uuid;

use crate::error::BrokerError;

/// Session epoch that asks for a full fetch without a session.
const FINAL_EPOCH: i32 = -1;
/// Session epoch that asks for a new session.
const INITIAL_EPOCH: i32 = 0;

/// One partition a fetch asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTarget {
    /// Topic name (empty when the request named the topic by an id no topic has).
    pub topic: String,
    /// Topic id: how Fetch v13+ names topics (nil before v13).
    pub topic_id: Uuid,
    /// Partition index.
    pub partition: i32,
    /// Offset to read from.
    pub fetch_offset: i64,
    /// Most bytes to return for this partition.
    pub max_bytes: i32,
    /// The client's leader epoch (-1 if unknown).
    pub leader_epoch: i32,
}

impl FetchTarget {
    /// Whether this is `partition` of the topic called `topic` or, when both sides know it,
    /// with id `topic_id` (v13+ clients name topics by id only).
    pub fn is(&self, topic: &str, topic_id: Uuid, partition: i32) -> bool {
        let same_topic = if self.topic_id.is_nil() || topic_id.is_nil() {
            self.topic == topic
        } else {
            self.topic_id == topic_id
        };
        same_topic && self.partition == partition
    }
}

/// A partition a fetch asks its session to drop: (topic name, topic id, partition).
pub type Forgotten = (String, Uuid, i32);

/// What a partition's last response said, to decide whether the next one must include it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionMarks {
    /// High watermark sent.
    pub high_watermark: i64,
    /// Log start offset sent.
    pub log_start: i64,
}

#[derive(Debug)]
struct Session {
    next_epoch: i32,
    targets: Vec<(FetchTarget, Option<PartitionMarks>)>,
    last_used: Instant,
}

/// How this fetch relates to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMode {
    /// No session: answer every requested partition.
    Sessionless,
    /// A session (new or existing): answer only partitions with news, except on creation.
    Session {
        /// Session id to return.
        id: i32,
        /// Whether this request created it (full response).
        created: bool,
    },
}

/// The broker's fetch-session cache, bounded by `max.incremental.fetch.session.cache.slots`.
pub struct FetchSessions {
    inner: Mutex<(HashMap<i32, Session>, i32)>,
    slots: usize,
}

impl FetchSessions {
    /// A cache with room for `slots` sessions.
    pub fn new(slots: usize) -> Self {
        Self {
            inner: Mutex::new((HashMap::new(), 0)),
            slots,
        }
    }

    /// Opens, updates or closes the request's session; returns the partitions to read.
    pub fn begin(
        &self,
        session_id: i32,
        epoch: i32,
        requested: Vec<FetchTarget>,
        forgotten: &[Forgotten],
    ) -> Result<(SessionMode, Vec<FetchTarget>), BrokerError> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (sessions, next_id) = &mut *guard;
        if epoch == FINAL_EPOCH {
            sessions.remove(&session_id);
            return Ok((SessionMode::Sessionless, requested));
        }
        if epoch == INITIAL_EPOCH {
            sessions.remove(&session_id);
            if self.slots == 0 {
                return Ok((SessionMode::Sessionless, requested));
            }
            if sessions.len() >= self.slots {
                // Evict the least recently used session to make room.
                if let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.last_used)
                    .map(|(id, _)| *id)
                {
                    sessions.remove(&oldest);
                }
            }
            let id = loop {
                *next_id = next_id.wrapping_add(1).max(1);
                if !sessions.contains_key(next_id) {
                    break *next_id;
                }
            };
            let targets = requested.iter().map(|t| (t.clone(), None)).collect();
            sessions.insert(
                id,
                Session {
                    next_epoch: 1,
                    targets,
                    last_used: Instant::now(),
                },
            );
            return Ok((SessionMode::Session { id, created: true }, requested));
        }
        let session = sessions
            .get_mut(&session_id)
            .ok_or(BrokerError::FetchSessionIdNotFound)?;
        if session.next_epoch != epoch {
            return Err(BrokerError::InvalidFetchSessionEpoch);
        }
        session.next_epoch = epoch.wrapping_add(1).max(1);
        session.last_used = Instant::now();
        session
            .targets
            .retain(|(t, _)| !forgotten.iter().any(|(n, id, p)| t.is(n, *id, *p)));
        for target in requested {
            match session
                .targets
                .iter_mut()
                .find(|(t, _)| t.is(&target.topic, target.topic_id, target.partition))
            {
                Some((t, _)) => *t = target,
                None => session.targets.push((target, None)),
            }
        }
        let targets = session.targets.iter().map(|(t, _)| t.clone()).collect();
        Ok((
            SessionMode::Session {
                id: session_id,
                created: false,
            },
            targets,
        ))
    }

    /// Drops a session (one whose creating fetch was answered without it).
    pub fn close(&self, id: i32) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.remove(&id);
    }

    /// Records what is being sent for a partition; false if an incremental response may
    /// leave it out (nothing new since the last response).
    pub fn note_sent(
        &self,
        session_id: i32,
        target: &FetchTarget,
        marks: PartitionMarks,
        has_news: bool,
    ) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(session) = guard.0.get_mut(&session_id) else {
            return true;
        };
        let Some((_, last)) = session
            .targets
            .iter_mut()
            .find(|(t, _)| t.is(&target.topic, target.topic_id, target.partition))
        else {
            return true;
        };
        let changed = *last != Some(marks);
        *last = Some(marks);
        changed || has_news
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(topic: &str, p: i32, offset: i64) -> FetchTarget {
        FetchTarget {
            topic: topic.into(),
            topic_id: Uuid::nil(),
            partition: p,
            fetch_offset: offset,
            max_bytes: 100,
            leader_epoch: -1,
        }
    }

    #[test]
    fn session_lifecycle() {
        let s = FetchSessions::new(2);
        let (mode, parts) = s
            .begin(0, 0, vec![t("a", 0, 0), t("a", 1, 0)], &[])
            .unwrap();
        let SessionMode::Session { id, created: true } = mode else {
            panic!("{mode:?}")
        };
        assert_eq!(parts.len(), 2);
        // Incremental: only changes are sent; the session keeps the rest.
        let (_, parts) = s
            .begin(id, 1, vec![t("a", 0, 5)], &[("a".into(), Uuid::nil(), 1)])
            .unwrap();
        assert_eq!(parts, vec![t("a", 0, 5)]);
        assert_eq!(
            s.begin(id, 1, vec![], &[]),
            Err(BrokerError::InvalidFetchSessionEpoch)
        );
        assert_eq!(
            s.begin(999, 1, vec![], &[]),
            Err(BrokerError::FetchSessionIdNotFound)
        );
        // Unchanged partitions can be left out of incremental responses.
        let marks = PartitionMarks {
            high_watermark: 5,
            log_start: 0,
        };
        let a0 = t("a", 0, 0);
        assert!(s.note_sent(id, &a0, marks, false));
        assert!(!s.note_sent(id, &a0, marks, false));
        assert!(s.note_sent(id, &a0, marks, true));
        // Closing.
        let (mode, _) = s.begin(id, -1, vec![], &[]).unwrap();
        assert_eq!(mode, SessionMode::Sessionless);
        assert_eq!(
            s.begin(id, 2, vec![], &[]),
            Err(BrokerError::FetchSessionIdNotFound)
        );
    }

    #[test]
    fn v13_sessions_know_partitions_by_topic_id() {
        let s = FetchSessions::new(2);
        let (id_a, id_b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let by_id = |topic: &str, id: Uuid, p: i32, offset: i64| FetchTarget {
            topic_id: id,
            ..t(topic, p, offset)
        };
        let (mode, _) = s
            .begin(
                0,
                0,
                vec![by_id("a", id_a, 0, 0), by_id("", id_b, 0, 0)],
                &[],
            )
            .unwrap();
        let SessionMode::Session { id, .. } = mode else {
            panic!("expected a session")
        };
        // The same name with another id (a topic deleted and made again) is another
        // partition; forgetting by id drops the one with no name.
        let (_, parts) = s
            .begin(
                id,
                1,
                vec![by_id("a", id_a, 0, 9)],
                &[(String::new(), id_b, 0)],
            )
            .unwrap();
        assert_eq!(parts, vec![by_id("a", id_a, 0, 9)]);
        assert!(!parts[0].is("a", Uuid::from_u128(3), 0));
        assert!(parts[0].is("a", Uuid::nil(), 0));
    }

    #[test]
    fn cache_is_bounded() {
        let s = FetchSessions::new(1);
        let (a, _) = s.begin(0, 0, vec![t("a", 0, 0)], &[]).unwrap();
        let (_b, _) = s.begin(0, 0, vec![t("a", 0, 0)], &[]).unwrap();
        let SessionMode::Session { id: a, .. } = a else {
            panic!()
        };
        assert_eq!(
            s.begin(a, 1, vec![], &[]),
            Err(BrokerError::FetchSessionIdNotFound)
        );
    }
}
