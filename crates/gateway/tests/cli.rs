//! The `authgate` binary's one-shot commands.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn ha1_prints_the_digest_alone_on_one_line() {
    // md5 -s 'myuser:voximplant.com:mypass123'
    let (ok, out, _) = run(&["ha1", "--user", "myuser", "--password", "mypass123"]);
    assert!(ok);
    assert_eq!(out, "ed0b761222371ac9eab34bbfb26e474b\n");
    let (_, full, _) = run(&[
        "ha1",
        "--user",
        "myuser@myapp.myaccount.voximplant.com",
        "--password",
        "mypass123",
    ]);
    assert_eq!(full, out, "a full username is reduced to the bare user");
}

#[test]
fn hash_prints_what_a_backend_answers_a_key_with() {
    // md5 of 'f3a5c3f6b0e1c6a1c2d3e4f5a6b7c8d9|' + md5('myuser:voximplant.com:mypass')
    let (ok, out, _) = run(&[
        "hash",
        "--key",
        "f3a5c3f6b0e1c6a1c2d3e4f5a6b7c8d9",
        "--user",
        "myuser",
        "--password",
        "mypass",
    ]);
    assert!(ok);
    assert_eq!(out, "1e359e51620d71540f35419668fd0ddd\n");
}

#[test]
fn a_malformed_setting_stops_serve_with_the_variable_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("serve")
        .env("AUTHGATE_LIMIT_PER_IP", "plenty")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("AUTHGATE_LIMIT_PER_IP"), "{err}");
}
