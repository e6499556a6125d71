//! What the tests that run the gateway's binary share.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

/// Reads the child's stderr into a shared buffer in the background.
pub fn capture(child: &mut std::process::Child) -> Arc<Mutex<String>> {
    use std::io::Read;
    let out = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().unwrap();
    let sink = out.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    out
}
