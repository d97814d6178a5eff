//! Reassembly of concatenated messages, pure and bounded.
//!
//! Contracts:
//! - Parts are grouped by [`PartKey`] (sender, reference, total); a group completes when every
//!   sequence number 1..=total has arrived, in any order. A repeated sequence number is ignored
//!   (the first copy wins) and reported as [`Pushed::Duplicate`]. Completed groups are not
//!   remembered: a copy arriving after its message completed starts a new group (and comes back
//!   as incomplete), because a reused reference from the same sender may be a new message.
//! - Nothing is dropped silently: a group idle for longer than the timeout comes back from
//!   [`Reassembler::expire`] as an [`IncompleteMessage`] with its missing parts marked, and when
//!   `max_groups` groups are pending the oldest is evicted the same way, from the `push` that
//!   needed the room. Memory is therefore bounded by `max_groups` × 255 parts.
//! - Time is passed in; the reassembler never reads a clock. The caller persists parts if they
//!   must survive a restart and pushes them again (with their original arrival times) on start.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::pdu::UserData;
use super::ucs2;

/// Groups pending when none is configured.
pub const DEFAULT_MAX_GROUPS: usize = 256;
/// How long a group may wait for its next part when none is configured. Networks deliver parts
/// within seconds to minutes; a day covers a phone that was off.
pub const DEFAULT_TIMEOUT: TimeDelta = TimeDelta::hours(24);

/// Identifies one concatenated message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartKey {
    pub sender: String,
    pub reference: u16,
    pub total: u8,
}

/// One received part; `seq` is 1-based. `payload` is whatever the caller needs back (a decoded
/// PDU, a store id, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<T> {
    pub key: PartKey,
    pub seq: u8,
    pub payload: T,
}

/// All parts of a message, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompleteMessage<T> {
    pub key: PartKey,
    pub parts: Vec<T>,
}

/// A message given up on: `parts[i]` is sequence number `i + 1`, `None` where it never came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteMessage<T> {
    pub key: PartKey,
    pub parts: Vec<Option<T>>,
    pub first_seen: DateTime<Utc>,
}

impl<T> IncompleteMessage<T> {
    /// Sequence numbers (1-based) that never arrived.
    pub fn missing(&self) -> Vec<u8> {
        self.parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_none())
            .map(|(i, _)| (i + 1) as u8)
            .collect()
    }
}

/// What [`Reassembler::push`] did with a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed<T> {
    /// The part completed its message.
    Complete(CompleteMessage<T>),
    /// Stored; the message still misses parts.
    Pending,
    /// Stored as the first part of a new group, for which the oldest pending group was evicted.
    PendingEvicted(IncompleteMessage<T>),
    /// A part with this sequence number was already stored; this copy is dropped.
    Duplicate,
    /// Sequence number 0 or above the total: handed back untouched.
    Invalid(Part<T>),
}

impl<T> Pushed<T> {
    /// The completed message, if this push completed one.
    pub fn complete(self) -> Option<CompleteMessage<T>> {
        match self {
            Pushed::Complete(m) => Some(m),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Group<T> {
    parts: Vec<Option<T>>,
    received: usize,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
}

/// Pending concatenated messages.
#[derive(Debug)]
pub struct Reassembler<T> {
    groups: HashMap<PartKey, Group<T>>,
    timeout: TimeDelta,
    max_groups: usize,
}

impl<T> Default for Reassembler<T> {
    fn default() -> Self {
        Reassembler::new(DEFAULT_TIMEOUT, DEFAULT_MAX_GROUPS)
    }
}

impl<T> Reassembler<T> {
    /// `max_groups` below 1 is taken as 1.
    pub fn new(timeout: TimeDelta, max_groups: usize) -> Self {
        Reassembler {
            groups: HashMap::new(),
            timeout,
            max_groups: max_groups.max(1),
        }
    }

    /// Number of pending (incomplete) groups.
    pub fn pending(&self) -> usize {
        self.groups.len()
    }

    /// Adds a part received at `now`.
    pub fn push(&mut self, part: Part<T>, now: DateTime<Utc>) -> Pushed<T> {
        let total = usize::from(part.key.total);
        if part.seq == 0 || usize::from(part.seq) > total {
            return Pushed::Invalid(part);
        }
        if total == 1 {
            return Pushed::Complete(CompleteMessage {
                key: part.key,
                parts: vec![part.payload],
            });
        }
        let mut evicted = None;
        if !self.groups.contains_key(&part.key) && self.groups.len() >= self.max_groups {
            evicted = self.evict_oldest();
        }
        let index = usize::from(part.seq) - 1;
        let group = self
            .groups
            .entry(part.key.clone())
            .or_insert_with(|| Group {
                parts: (0..total).map(|_| None).collect(),
                received: 0,
                first_seen: now,
                last_seen: now,
            });
        let Some(slot) = group.parts.get_mut(index) else {
            return Pushed::Invalid(part);
        };
        if slot.is_some() {
            return Pushed::Duplicate;
        }
        *slot = Some(part.payload);
        group.received += 1;
        group.last_seen = group.last_seen.max(now);
        if group.received < total {
            return match evicted {
                Some(e) => Pushed::PendingEvicted(e),
                None => Pushed::Pending,
            };
        }
        let Some(group) = self.groups.remove(&part.key) else {
            return Pushed::Pending;
        };
        Pushed::Complete(CompleteMessage {
            key: part.key,
            parts: group.parts.into_iter().flatten().collect(),
        })
    }

    fn evict_oldest(&mut self) -> Option<IncompleteMessage<T>> {
        let oldest = self
            .groups
            .iter()
            .min_by(|a, b| (a.1.first_seen, a.0).cmp(&(b.1.first_seen, b.0)))
            .map(|(k, _)| k.clone())?;
        self.take(&oldest)
    }

    fn take(&mut self, key: &PartKey) -> Option<IncompleteMessage<T>> {
        self.groups
            .remove_entry(key)
            .map(|(key, g)| IncompleteMessage {
                key,
                parts: g.parts,
                first_seen: g.first_seen,
            })
    }

    /// Removes and returns the groups whose last part arrived more than the timeout before
    /// `now`, oldest first.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<IncompleteMessage<T>> {
        let timeout = self.timeout;
        let mut keys: Vec<(DateTime<Utc>, PartKey)> = self
            .groups
            .iter()
            .filter(|(_, g)| now.signed_duration_since(g.last_seen) > timeout)
            .map(|(k, g)| (g.first_seen, k.clone()))
            .collect();
        keys.sort();
        keys.iter().filter_map(|(_, k)| self.take(k)).collect()
    }

    /// Removes and returns every pending group, oldest first (at shutdown, or the end of a batch).
    pub fn drain(&mut self) -> Vec<IncompleteMessage<T>> {
        let mut keys: Vec<(DateTime<Utc>, PartKey)> = self
            .groups
            .iter()
            .map(|(k, g)| (g.first_seen, k.clone()))
            .collect();
        keys.sort();
        keys.iter().filter_map(|(_, k)| self.take(k)).collect()
    }
}

/// The text of consecutive parts: each part's text, with surrogate halves split across a part
/// boundary joined again. A missing part (`None`) or an unmatched half shows as U+FFFD.
pub fn join_text<'a>(parts: impl IntoIterator<Item = Option<&'a UserData>>) -> String {
    let mut out = String::new();
    let mut pending_high: Option<u16> = None;
    for part in parts {
        let Some(ud) = part else {
            if pending_high.take().is_some() {
                out.push(char::REPLACEMENT_CHARACTER);
            }
            continue;
        };
        match (pending_high.take(), ud.leading_low_surrogate) {
            (Some(high), Some(low)) => {
                out.push(ucs2::join_surrogates(high, low).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            (None, None) => {}
            _ => out.push(char::REPLACEMENT_CHARACTER),
        }
        out.push_str(&ud.text());
        pending_high = ud.trailing_high_surrogate;
    }
    if pending_high.is_some() {
        out.push(char::REPLACEMENT_CHARACTER);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn part(sender: &str, reference: u16, total: u8, seq: u8) -> Part<String> {
        Part {
            key: PartKey {
                sender: sender.into(),
                reference,
                total,
            },
            seq,
            payload: format!("{sender}/{reference}/{seq}"),
        }
    }

    #[test]
    fn completes_in_any_order_and_ignores_duplicates() {
        let mut r = Reassembler::new(TimeDelta::minutes(10), 8);
        assert_eq!(r.push(part("a", 7, 3, 3), t(0)), Pushed::Pending);
        assert_eq!(r.push(part("a", 7, 3, 3), t(1)), Pushed::Duplicate);
        assert_eq!(r.push(part("a", 7, 3, 1), t(2)), Pushed::Pending);
        assert_eq!(
            r.push(part("b", 7, 3, 2), t(2)),
            Pushed::Pending,
            "other sender"
        );
        assert_eq!(
            r.push(part("a", 7, 2, 2), t(2)),
            Pushed::Pending,
            "other total"
        );
        let done = r.push(part("a", 7, 3, 2), t(3)).complete().unwrap();
        assert_eq!(done.parts, vec!["a/7/1", "a/7/2", "a/7/3"]);
        assert_eq!(r.pending(), 2);
        let single = r.push(part("c", 0, 1, 1), t(3)).complete().unwrap();
        assert_eq!(single.parts, vec!["c/0/1"]);
        assert!(matches!(
            r.push(part("a", 1, 3, 0), t(3)),
            Pushed::Invalid(_)
        ));
        assert!(matches!(
            r.push(part("a", 1, 3, 4), t(3)),
            Pushed::Invalid(_)
        ));
        assert!(matches!(
            r.push(part("a", 1, 0, 1), t(3)),
            Pushed::Invalid(_)
        ));
    }

    #[test]
    fn hands_back_timed_out_groups_with_gaps_marked() {
        let mut r = Reassembler::new(TimeDelta::minutes(10), 8);
        r.push(part("a", 1, 4, 2), t(0));
        r.push(part("a", 1, 4, 4), t(300));
        r.push(part("b", 1, 2, 1), t(100));
        assert!(
            r.expire(t(700)).is_empty(),
            "timeout counts from the last part"
        );
        let gone = r.expire(t(901));
        assert_eq!(gone.len(), 2);
        assert_eq!(gone[0].key.sender, "a");
        assert_eq!(gone[0].missing(), vec![1, 3]);
        assert_eq!(gone[0].parts[1].as_deref(), Some("a/1/2"));
        assert_eq!(gone[1].missing(), vec![2]);
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn evicts_the_oldest_group_when_full() {
        let mut r = Reassembler::new(TimeDelta::minutes(10), 2);
        r.push(part("a", 1, 2, 1), t(0));
        r.push(part("b", 1, 2, 1), t(1));
        assert_eq!(r.push(part("b", 1, 2, 1), t(2)), Pushed::Duplicate);
        match r.push(part("c", 1, 2, 2), t(3)) {
            Pushed::PendingEvicted(e) => {
                assert_eq!(e.key.sender, "a");
                assert_eq!(e.missing(), vec![2]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.pending(), 2);
        let rest = r.drain();
        assert_eq!(
            rest.iter()
                .map(|m| m.key.sender.as_str())
                .collect::<Vec<_>>(),
            ["b", "c"]
        );
    }
}
