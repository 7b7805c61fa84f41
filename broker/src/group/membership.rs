//! Classic group memberships as `__consumer_offsets` records, in Kafka's layout: key v2 =
//! (group), value v3 = (protocol type, generation, protocol, leader, state time, members with
//! their subscription and assignment). A coordinator taking a group over replays the last
//! one, so the group keeps its generation and its members their partitions: their heartbeats
//! and (transactional) offset commits stay valid across a coordinator failover.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::coordinator::{get_str, put_str};

/// The key version that marks a group-metadata record (offset keys are v0 and v1).
pub const KEY_VERSION: i16 = 2;
const VALUE_VERSION: i16 = 3;

/// A classic group as its record stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredGroup {
    /// Protocol type ("consumer", "connect", ...; empty for an empty group).
    pub protocol_type: String,
    /// Generation.
    pub generation: i32,
    /// Chosen assignor.
    pub protocol: Option<String>,
    /// Leader's member id.
    pub leader: Option<String>,
    /// When the group entered its state (ms since the epoch).
    pub state_ms: i64,
    /// Members.
    pub members: Vec<StoredMember>,
}

/// One member in a [`StoredGroup`].
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMember {
    /// Member id.
    pub id: String,
    /// group.instance.id of a static member.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    /// Rebalance timeout (ms).
    pub rebalance_timeout_ms: i32,
    /// Session timeout (ms).
    pub session_timeout_ms: i32,
    /// Its metadata for the chosen protocol.
    pub subscription: Bytes,
    /// Its assignment (empty until the leader's SyncGroup).
    pub assignment: Bytes,
}

/// The record key of a group's membership.
pub fn encode_key(group: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(KEY_VERSION);
    put_str(&mut b, group);
    b.freeze()
}

/// The group a membership key names; `None` for other keys.
pub fn decode_key(mut key: Bytes) -> Option<String> {
    if key.remaining() < 2 || key.get_i16() != KEY_VERSION {
        return None;
    }
    get_str(&mut key)
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, bytes: &[u8]) {
    b.put_i32(i32::try_from(bytes.len()).unwrap_or(i32::MAX));
    b.put_slice(bytes);
}

/// The record value of a group's membership.
pub fn encode_value(g: &StoredGroup) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(VALUE_VERSION);
    put_str(&mut b, &g.protocol_type);
    b.put_i32(g.generation);
    put_nullable_str(&mut b, g.protocol.as_deref());
    put_nullable_str(&mut b, g.leader.as_deref());
    b.put_i64(g.state_ms);
    b.put_i32(i32::try_from(g.members.len()).unwrap_or(i32::MAX));
    for m in &g.members {
        put_str(&mut b, &m.id);
        put_nullable_str(&mut b, m.instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.freeze()
}

fn get_nullable_str(v: &mut Bytes) -> Option<Option<String>> {
    if v.remaining() < 2 {
        return None;
    }
    if v.chunk()[..2] == [0xff, 0xff] {
        v.advance(2);
        return Some(None);
    }
    get_str(v).map(Some)
}

fn get_bytes(v: &mut Bytes) -> Option<Bytes> {
    if v.remaining() < 4 {
        return None;
    }
    let len = v.get_i32();
    if len < 0 {
        return Some(Bytes::new());
    }
    let len = usize::try_from(len).ok()?;
    (v.remaining() >= len).then(|| v.split_to(len))
}

fn get_i32(v: &mut Bytes) -> Option<i32> {
    (v.remaining() >= 4).then(|| v.get_i32())
}

/// Reads a membership value of any of Kafka's versions 0 to 3; `None` if malformed.
pub fn decode_value(mut v: Bytes) -> Option<StoredGroup> {
    if v.remaining() < 2 {
        return None;
    }
    let version = v.get_i16();
    if !(0..=VALUE_VERSION).contains(&version) {
        return None;
    }
    let protocol_type = get_str(&mut v)?;
    let generation = get_i32(&mut v)?;
    let protocol = get_nullable_str(&mut v)?;
    let leader = get_nullable_str(&mut v)?;
    let state_ms = if version >= 2 {
        (v.remaining() >= 8).then(|| v.get_i64())?
    } else {
        -1
    };
    let count = get_i32(&mut v)?;
    let mut members = Vec::new();
    for _ in 0..count.max(0) {
        let id = get_str(&mut v)?;
        let instance_id = if version >= 3 {
            get_nullable_str(&mut v)?
        } else {
            None
        };
        let client_id = get_str(&mut v)?;
        let client_host = get_str(&mut v)?;
        let rebalance = if version >= 1 {
            Some(get_i32(&mut v)?)
        } else {
            None
        };
        let session_timeout_ms = get_i32(&mut v)?;
        let rebalance_timeout_ms = rebalance.unwrap_or(session_timeout_ms);
        members.push(StoredMember {
            id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription: get_bytes(&mut v)?,
            assignment: get_bytes(&mut v)?,
        });
    }
    Some(StoredGroup {
        protocol_type,
        generation,
        protocol,
        leader,
        state_ms,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memberships_round_trip_and_garbage_is_refused() {
        let g = StoredGroup {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            state_ms: 1_700_000_000_000,
            members: vec![StoredMember {
                id: "m-1".into(),
                instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(decode_value(encode_value(&g)), Some(g.clone()));
        assert_eq!(decode_key(encode_key("g")), Some("g".to_string()));
        // Offset keys (v1) are not membership keys.
        assert_eq!(
            decode_key(crate::group::offsets::encode_key("g", "t", 0)),
            None
        );
        // Every truncation is refused, none panics.
        let full = encode_value(&g);
        for cut in 0..full.len() {
            assert_eq!(decode_value(full.slice(..cut)), None, "cut at {cut}");
        }
        // A huge claimed member count allocates nothing up front.
        let mut b = BytesMut::new();
        b.put_i16(3);
        put_str(&mut b, "consumer");
        b.put_i32(1);
        b.put_i16(-1);
        b.put_i16(-1);
        b.put_i64(0);
        b.put_i32(i32::MAX);
        assert_eq!(decode_value(b.freeze()), None);
    }
}
