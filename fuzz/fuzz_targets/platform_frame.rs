//! The `/platform` WebSocket of a real gateway (memory store, one web phone
//! user), one frame per input, over a real socket on loopback: the frame gets
//! what the SDK protocol says (an answer, a pong, nothing, or a close with the
//! documented code), and the socket never just drops
//! (`tests/tests/oracle/platform.rs`). The frame decoding is private to the
//! gateway, so it is reached the way a client reaches it.
//!
//! The first byte picks a binary frame (when it is 0) or a text frame; the rest
//! is the frame (as UTF-8, lossily).

#![no_main]

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/tests/oracle/platform.rs"]
mod platform;

struct World {
    rt: tokio::runtime::Runtime,
    client: platform::Client,
    _app: authgate_tests::TestApp,
}

fn world() -> &'static Mutex<World> {
    static WORLD: OnceLock<Mutex<World>> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let app = rt.block_on(async {
            let app = authgate_tests::spawn_app_with(None, |c| {
                c.limits.per_ip = authgate_core::limits::Limit::OFF;
                c.delivery_worker = false;
            })
            .await;
            app.web_user("myuser", "mypass123").await;
            app
        });
        Mutex::new(World {
            rt,
            client: platform::Client::new(app.addr),
            _app: app,
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((pick, rest)) = data.split_first() else {
        return;
    };
    let frame = if *pick == 0 {
        platform::Frame::Binary(rest.to_vec())
    } else {
        platform::Frame::Text(String::from_utf8_lossy(rest).into_owned())
    };
    let mut w = world().lock().unwrap_or_else(|e| e.into_inner());
    let World { rt, client, .. } = &mut *w;
    if let Err(e) = rt.block_on(client.case(&frame)) {
        panic!("{e}\nframe: {frame:?}");
    }
});
