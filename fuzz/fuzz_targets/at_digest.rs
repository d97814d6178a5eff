//! Feeds arbitrary modem output to the AT digester in arbitrary chunks, with and without a
//! command in flight (one that expects a prompt, one with an answer prefix). The digester must
//! never panic, must stay bounded, and must consume what it returns events for.
#![no_main]

#[path = "../../src/modem/at.rs"]
#[allow(dead_code)]
mod at;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut cmgs = at::Command::new("AT+CMGS=19", Some("+CMGS:"));
    cmgs.wants_prompt = true;
    let cmgr = at::Command::new("AT+CMGR=1", Some("+CMGR:"));
    let cmd = match mode % 3 {
        0 => None,
        1 => Some(&cmgs),
        _ => Some(&cmgr),
    };
    let chunk = usize::from(mode / 3).max(1);
    let mut d = at::Digester::new();
    for piece in rest.chunks(chunk) {
        d.push(piece);
        let mut events = 0;
        while d.next(cmd).is_some() {
            events += 1;
            assert!(events <= rest.len() + 1, "more events than bytes");
        }
        assert!(d.pending() <= 8 * 1024 + chunk, "buffer grew past its bound");
    }
    let _ = at::fields(&String::from_utf8_lossy(rest));
});
