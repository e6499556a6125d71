//! The committed OpenAPI document must be what the server serves, byte for byte,
//! and strict JSON (no key twice: lenient parsers would merge such keys and hide
//! the bug). `AUTHGATE_UPDATE_OPENAPI=1 cargo test -p authgate-gateway --test openapi`
//! rewrites it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use authgate_gateway::api::document::strict_parse;
use authgate_gateway::{Application, Config};

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi/openapi.json")
}

fn strict(text: &str) -> String {
    if let Err(e) = strict_parse(text) {
        panic!("the document is not strict JSON: {e}");
    }
    text.to_owned()
}

#[tokio::test]
async fn the_committed_spec_matches_what_the_server_serves() {
    let config = Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    let app = Application::build(config).await.unwrap();
    let url = format!("http://{}/openapi.json", app.addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let served = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let _ = tx.send(());
    let _ = server.await;
    let served = strict(&served);

    let path = committed_path();
    if std::env::var("AUTHGATE_UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &served).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    strict(&committed);
    assert!(
        committed == served,
        "openapi/openapi.json is out of date with the served spec; rerun with AUTHGATE_UPDATE_OPENAPI=1 and commit it"
    );
}

#[test]
fn the_cli_prints_the_same_spec() {
    if std::env::var("AUTHGATE_UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        return; // the other test is rewriting the file
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = strict(&String::from_utf8(out.stdout).unwrap());
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    assert!(
        printed == committed,
        "`authgate openapi` differs from openapi/openapi.json"
    );
}
