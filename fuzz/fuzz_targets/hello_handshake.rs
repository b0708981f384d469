//! The connection hello as the transport runs it, fed the bytes a hostile peer sends: the
//! first input byte picks the side (acceptor or dialler) and whether this side holds a
//! cluster secret (HMAC challenge–response); the rest is the peer's byte stream, read
//! frame by frame by the transport's own frame reader. Also the cluster secret file's
//! text form. Nothing may panic; without the secret nothing random is ever accepted.
#![no_main]

use basalt_transport::fuzzing::{fuzz_hello_accept, fuzz_hello_dial, fuzz_secret_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let authenticate = mode & 1 == 1;
    match (mode >> 1) % 3 {
        0 => {
            let ok = fuzz_hello_accept(stream, authenticate);
            // an authenticating acceptor needs a proof made with the secret, which the
            // fuzzer cannot forge
            assert!(!(ok && authenticate), "forged authentication accepted");
        }
        1 => {
            let ok = fuzz_hello_dial(stream, authenticate);
            assert!(!(ok && authenticate), "forged acceptor proof accepted");
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(stream) {
                fuzz_secret_text(text);
            }
        }
    }
});
