//! Drives the reassembler with arbitrary pushes and expiries and checks its promises: bounded
//! groups, complete messages in order, and every stored part accounted for exactly once.
#![no_main]

#[path = "../../src/sms/mod.rs"]
#[allow(dead_code, unused_imports)]
mod sms;

use chrono::{DateTime, TimeDelta, Utc};
use libfuzzer_sys::fuzz_target;
use sms::{Part, PartKey, Pushed, Reassembler};

const MAX_GROUPS: usize = 4;

fuzz_target!(|data: &[u8]| {
    let mut r: Reassembler<(PartKey, u8)> = Reassembler::new(TimeDelta::seconds(60), MAX_GROUPS);
    let mut now = DateTime::<Utc>::UNIX_EPOCH;
    let mut stored = 0usize;
    let mut handed_back = 0usize;
    for op in data.chunks_exact(4) {
        let (kind, a, b, c) = (op[0], op[1], op[2], op[3]);
        now += TimeDelta::seconds(i64::from(kind >> 4));
        if kind & 0x0F == 0 {
            for m in r.expire(now) {
                assert!(!m.missing().is_empty());
                handed_back += m.parts.iter().flatten().count();
            }
            continue;
        }
        let key = PartKey {
            sender: format!("{}", a & 0x03),
            reference: u16::from(a >> 2),
            total: b % 6,
        };
        let seq = c % 7;
        let part = Part {
            key: key.clone(),
            seq,
            payload: (key.clone(), seq),
        };
        match r.push(part, now) {
            Pushed::Complete(m) => {
                assert_eq!(m.key, key);
                assert_eq!(m.parts.len(), usize::from(key.total));
                for (i, (k, s)) in m.parts.iter().enumerate() {
                    assert_eq!(k, &key);
                    assert_eq!(usize::from(*s), i + 1);
                }
                stored += 1;
                handed_back += m.parts.len();
            }
            Pushed::Pending => stored += 1,
            Pushed::PendingEvicted(m) => {
                stored += 1;
                assert_ne!(m.key, key);
                handed_back += m.parts.iter().flatten().count();
            }
            Pushed::Duplicate => {}
            Pushed::Invalid(p) => assert!(p.seq == 0 || p.seq > p.key.total),
        }
        assert!(r.pending() <= MAX_GROUPS);
    }
    for m in r.drain() {
        handed_back += m.parts.iter().flatten().count();
    }
    assert_eq!(stored, handed_back, "every stored part comes back exactly once");
});
