//! The documentation is executed, the way rustdoc runs examples, so it cannot
//! drift from what the gateway does.
//!
//! - Every ```` ```sh run ```` block of `README.md` and `docs/*.md` runs. A document
//!   with such blocks says which gateway it expects on a line of its own,
//!   `<!-- walkthrough: empty gateway -->` or `<!-- walkthrough: demo gateway -->`
//!   (the latter seeded as `authgate serve --demo` seeds it). Each document gets a
//!   fresh gateway on its own private Redis, and its blocks run in order in one
//!   `bash` (so variables carry over) under `set -Eeuo pipefail`, in a scratch
//!   directory, with a time limit. `127.0.0.1:8080` in a block becomes the
//!   gateway's address and `127.0.0.1:9000` a free port for the walkthrough's own
//!   webhook receiver; `CLIENT_SECRET` holds the API client's secret, as the reader
//!   sets it from what the gateway prints. A failing block fails the test with its
//!   text, the line it failed near, and its output. Plain ```` ```sh ```` blocks
//!   (starting the gateway, pasting a secret) are shown, not run.
//!   `AUTHGATE_DOCS=webhooks` runs only the documents whose path contains that.
//! - Every relative link of those documents points to a file that exists, and
//!   every `#anchor` to a heading of the file it names.
//!
//! Needs `bash`, `curl`, `jq`, `python3` and `md5sum` on the PATH.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use authgate_tests::app::CLIENT_SECRET;
use authgate_tests::{redis_or_skip, spawn_app_with, TestRedis};

/// How long one document's blocks may take, all together.
const DOCUMENT_TIME_LIMIT: Duration = Duration::from_secs(180);
/// The address the documents show for the gateway.
const DOC_GATEWAY: &str = "127.0.0.1:8080";
/// The address the documents show for their webhook receiver.
const DOC_RECEIVER: &str = "127.0.0.1:9000";
/// What the test needs on the PATH to run the blocks.
const TOOLS: &[&str] = &["bash", "curl", "jq", "python3", "md5sum"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// `README.md` and `docs/*.md`, as paths relative to the workspace.
fn documents() -> Vec<PathBuf> {
    let root = workspace();
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.expect("a docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| p.strip_prefix(&root).expect("under the root").to_path_buf())
        .collect();
    docs.sort();
    docs.insert(0, PathBuf::from("README.md"));
    docs
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gateway {
    /// Nothing in it but the realm (`authgate serve`).
    Empty,
    /// Seeded like `authgate serve --demo`.
    Demo,
}

#[derive(Debug)]
struct Block {
    /// Line of the block's first line of code, from 1.
    line: usize,
    code: String,
}

#[derive(Debug)]
struct Walkthrough {
    path: PathBuf,
    gateway: Gateway,
    blocks: Vec<Block>,
}

/// A fenced code block's opening: its fence and its info string.
fn fence_open(line: &str) -> Option<(String, String)> {
    let t = line.trim_start();
    let ch = t.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let n = t.chars().take_while(|c| *c == ch).count();
    (n >= 3).then(|| (ch.to_string().repeat(n), t[n..].trim().to_owned()))
}

fn fence_closes(line: &str, fence: &str) -> bool {
    let t = line.trim();
    t.starts_with(fence) && t.chars().all(|c| fence.starts_with(c))
}

/// The lines of `text` outside fenced code blocks, with their numbers (from 1).
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut fence: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        match &fence {
            Some(f) if fence_closes(line, f) => fence = None,
            Some(_) => {}
            None => match fence_open(line) {
                Some((f, _)) => fence = Some(f),
                None => out.push((i + 1, line)),
            },
        }
    }
    out
}

/// The document's walkthrough, if it has `sh run` blocks; malformed markers panic.
fn walkthrough(path: &Path, text: &str) -> Option<Walkthrough> {
    let shown = path.display();
    let mut gateways = Vec::new();
    for (n, line) in prose_lines(text) {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("<!-- walkthrough:") {
            let gateway = match rest.trim_end_matches("-->").trim() {
                "empty gateway" => Gateway::Empty,
                "demo gateway" => Gateway::Demo,
                other => panic!(
                    "{shown}:{n}: unknown walkthrough gateway {other:?}; \
                     say `empty gateway` or `demo gateway`"
                ),
            };
            gateways.push(gateway);
        }
    }
    let mut blocks = Vec::new();
    let mut open: Option<(String, bool, usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut open {
            Some((fence, runs, start, code)) => {
                if fence_closes(line, fence) {
                    if *runs {
                        blocks.push(Block {
                            line: *start,
                            code: std::mem::take(code),
                        });
                    }
                    open = None;
                } else {
                    code.push_str(line);
                    code.push('\n');
                }
            }
            None => {
                if let Some((fence, info)) = fence_open(line) {
                    let mut words = info.split_whitespace();
                    let lang = words.next().unwrap_or_default();
                    let rest: Vec<&str> = words.collect();
                    let runs = match (lang, rest.as_slice()) {
                        ("sh", ["run"]) => true,
                        ("sh", []) => false,
                        ("sh", other) => panic!(
                            "{shown}:{}: unknown marker {other:?} on a sh block; \
                             write `sh run` for a block the test runs, plain `sh` otherwise",
                            i + 1
                        ),
                        _ => false,
                    };
                    open = Some((fence, runs, i + 2, String::new()));
                }
            }
        }
    }
    assert!(open.is_none(), "{shown}: a code block is never closed");
    match (gateways.as_slice(), blocks.is_empty()) {
        (_, true) => {
            assert!(
                gateways.is_empty(),
                "{shown}: declares a walkthrough but has no `sh run` block"
            );
            None
        }
        ([gateway], false) => Some(Walkthrough {
            path: path.to_path_buf(),
            gateway: *gateway,
            blocks,
        }),
        ([], false) => panic!(
            "{shown}: has `sh run` blocks but no `<!-- walkthrough: empty gateway -->` \
             or `<!-- walkthrough: demo gateway -->` line"
        ),
        (_, false) => panic!("{shown}: declares more than one walkthrough gateway"),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn missing_tools() -> Vec<&'static str> {
    TOOLS
        .iter()
        .copied()
        .filter(|tool| {
            !std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect()
}

/// Where a block starts in the script, for mapping a failing line back to the doc.
struct Placed {
    first_script_line: usize,
    block: usize,
}

const BLOCK_MARK: &str = "@@docs-block ";
const FAILED_MARK: &str = "@@docs-failed-at-line ";

/// One bash script of all the blocks, with markers the output is split on.
fn script(w: &Walkthrough, gateway: &str, receiver: &str) -> (String, Vec<Placed>) {
    let mut s = String::from(
        "set -Eeuo pipefail\n\
         exec 2>&1\n\
         trap 'echo \"@@docs-failed-at-line $LINENO\"' ERR\n\
         trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n",
    );
    let mut placed = Vec::new();
    for (i, b) in w.blocks.iter().enumerate() {
        writeln!(s, "echo '{BLOCK_MARK}{i}'").unwrap();
        placed.push(Placed {
            first_script_line: s.lines().count() + 1,
            block: i,
        });
        s.push_str(
            &b.code
                .replace(DOC_GATEWAY, gateway)
                .replace(DOC_RECEIVER, receiver),
        );
    }
    s.push_str("echo '@@docs-done'\n");
    (s, placed)
}

/// Runs one walkthrough against a fresh gateway; `Err` says what failed.
async fn run(w: &Walkthrough, redis: &TestRedis) -> Result<(), String> {
    let app = spawn_app_with(Some(redis), |c| {
        if w.gateway == Gateway::Demo {
            // As `authgate serve --demo` does (crates/gateway/src/main.rs): the demo's
            // email integration writes its messages to the log.
            c.smtp_url = Some(secrecy::SecretString::from("log".to_owned()));
            c.email_from = Some("authgate demo <no-reply@authgate.invalid>".to_owned());
        }
    })
    .await;
    if w.gateway == Gateway::Demo {
        authgate_gateway::demo::seed(&app.state)
            .await
            .expect("the demo data is seeded");
    }
    let gateway = app.addr.to_string();
    let receiver = format!("127.0.0.1:{}", free_port());
    let (text, placed) = script(w, &gateway, &receiver);

    let scratch =
        std::env::temp_dir().join(format!("authgate-docs-{}", uuid::Uuid::new_v4().simple()));
    fs::create_dir_all(&scratch).expect("a scratch directory");
    let script_path = scratch.join("walkthrough.sh");
    let output_path = scratch.join("output.log");
    fs::write(&script_path, &text).expect("the script is written");
    let output = fs::File::create(&output_path).expect("the output file");

    // Its own process group, so that whatever it starts in the background (a
    // webhook receiver) is stopped with it. Output goes to a file, not a pipe, so
    // a background process still holding it cannot keep the test waiting.
    let mut child = tokio::process::Command::new("bash")
        .arg(&script_path)
        .current_dir(&scratch)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &scratch)
        .env("LC_ALL", "C.UTF-8")
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("the output file"))
        .stderr(output)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("bash starts");
    let pgid = child.id();
    let status = tokio::time::timeout(DOCUMENT_TIME_LIMIT, child.wait()).await;
    if let Some(pgid) = pgid {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
    }
    let log = fs::read_to_string(&output_path).unwrap_or_default();
    let _ = fs::remove_dir_all(&scratch);
    drop(app);

    let finished = log.lines().any(|l| l == "@@docs-done");
    let succeeded = matches!(&status, Ok(Ok(s)) if s.success());
    if succeeded && finished {
        return Ok(());
    }

    // The block that was running: the last one whose marker was printed.
    let mut current = 0usize;
    let mut outputs: Vec<String> = vec![String::new(); w.blocks.len()];
    let mut failed_line = None;
    for line in log.lines() {
        if let Some(i) = line.strip_prefix(BLOCK_MARK) {
            current = i.parse().unwrap_or(current);
        } else if let Some(n) = line.strip_prefix(FAILED_MARK) {
            failed_line = failed_line.or(n.parse::<usize>().ok());
        } else if line != "@@docs-done" {
            outputs[current].push_str(line);
            outputs[current].push('\n');
        }
    }
    let block = &w.blocks[current];
    let near = failed_line
        .and_then(|n| {
            let p = placed.iter().rev().find(|p| p.first_script_line <= n)?;
            (p.block == current).then(|| block.line + (n - p.first_script_line))
        })
        .map(|n| format!(" near line {n}"))
        .unwrap_or_default();
    let why = match &status {
        Err(_) => format!("did not finish within {DOCUMENT_TIME_LIMIT:?}"),
        Ok(Ok(s)) if !s.success() => format!("failed{near} ({s})"),
        Ok(Ok(_)) => "ended without reaching the end of the document".to_owned(),
        Ok(Err(e)) => format!("could not be waited for: {e}"),
    };
    Err(format!(
        "{path}: the `sh run` block at line {line} {why}\n\
         --- the block ---\n{code}\
         --- its output ---\n{out}---",
        path = w.path.display(),
        line = block.line,
        code = block.code,
        out = outputs[current],
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_walkthrough_in_the_docs_runs_against_a_real_gateway() {
    let only = std::env::var("AUTHGATE_DOCS").ok();
    let root = workspace();
    let walkthroughs: Vec<Walkthrough> = documents()
        .into_iter()
        .filter(|p| {
            only.as_deref()
                .is_none_or(|o| p.to_string_lossy().contains(o))
        })
        .filter_map(|p| {
            let text = fs::read_to_string(root.join(&p)).expect("a readable document");
            walkthrough(&p, &text)
        })
        .collect();
    assert!(
        !walkthroughs.is_empty(),
        "no document with `sh run` blocks (AUTHGATE_DOCS={only:?})"
    );
    let missing = missing_tools();
    assert!(
        missing.is_empty(),
        "the docs' walkthroughs need {missing:?} on the PATH (on Debian: apt-get install curl jq python3)"
    );

    // Each document on its own gateway and Redis, all at once.
    let mut runs = Vec::new();
    for w in walkthroughs {
        let redis = redis_or_skip!();
        runs.push(tokio::spawn(async move {
            let outcome = run(&w, &redis).await;
            (w.path, outcome)
        }));
    }
    let mut failures = Vec::new();
    for r in runs {
        let (path, outcome) = r.await.expect("a walkthrough task");
        match outcome {
            Ok(()) => eprintln!("ran {}", path.display()),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// GitHub's anchor for a heading's text.
fn slug(heading: &str) -> String {
    // Links keep their text; code spans and emphasis lose their marks.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match (after.find("]("), after.find(')')) {
            (Some(close), Some(end)) if close < end => {
                text.push_str(&after[..close]);
                rest = &after[end + 1..];
            }
            _ => {
                text.push('[');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (with GitHub's `-1`, `-2` for repeats).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let t = line.trim_start();
        let hashes = t.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) || !t[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(t[hashes..].trim().trim_end_matches('#'));
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// The link targets on a line of prose: inline links and reference definitions,
/// not what is inside code spans.
fn link_targets(line: &str) -> Vec<String> {
    let mut prose = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            prose.push(c);
        }
    }
    let mut out = Vec::new();
    let t = prose.trim_start();
    if t.starts_with('[') {
        if let Some(i) = t.find("]:") {
            if let Some(target) = t[i + 2..].split_whitespace().next() {
                out.push(target.to_owned());
            }
        }
    }
    let mut rest = prose.as_str();
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let end = after.find(')').unwrap_or(after.len());
        let target = after[..end].split_whitespace().next().unwrap_or_default();
        out.push(target.trim_matches(|c| c == '<' || c == '>').to_owned());
        rest = &after[end..];
    }
    out
}

#[test]
fn every_relative_link_in_the_readme_and_the_docs_resolves() {
    let root = workspace();
    let mut broken = Vec::new();
    for doc in documents() {
        let text = fs::read_to_string(root.join(&doc)).expect("a readable document");
        let dir = root.join(&doc).parent().expect("a folder").to_path_buf();
        for (n, line) in prose_lines(&text) {
            for target in link_targets(line) {
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (file, anchor) = match target.split_once('#') {
                    Some((f, a)) => (f, Some(a)),
                    None => (target.as_str(), None),
                };
                let path = if file.is_empty() {
                    root.join(&doc)
                } else {
                    dir.join(file)
                };
                let at = format!("{}:{n}: {target}", doc.display());
                if !path.exists() {
                    broken.push(format!("{at} (no such file)"));
                    continue;
                }
                let Some(anchor) = anchor else { continue };
                if path.extension().is_some_and(|x| x == "md") {
                    let known = anchors(&fs::read_to_string(&path).expect("a readable target"));
                    if !known.contains(anchor) {
                        broken.push(format!("{at} (no such heading)"));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn anchors_follow_githubs_rules() {
    let text = "# authgate\n## The web phone SDK: `/platform` over `wss://`\n\
                ```sh\n# not a heading\n```\n## Roadmap / not yet built\n## Roadmap / not yet built\n\
                ### See [the guide](docs/x.md), 2 steps\n";
    let got = anchors(text);
    let want: BTreeSet<String> = [
        "authgate",
        "the-web-phone-sdk-platform-over-wss",
        "roadmap--not-yet-built",
        "roadmap--not-yet-built-1",
        "see-the-guide-2-steps",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(got, want);
}

#[test]
fn run_blocks_are_found_in_order_and_others_are_not() {
    let text = "<!-- walkthrough: demo gateway -->\n\
                ```sh\ncargo run\n```\n\
                ```sh run\nA=1\n```\n\
                ```json\n{}\n```\n\
                ```sh run\necho \"$A\"\n```\n";
    let w = walkthrough(Path::new("x.md"), text).expect("a walkthrough");
    assert_eq!(w.gateway, Gateway::Demo);
    let got: Vec<(usize, &str)> = w.blocks.iter().map(|b| (b.line, b.code.as_str())).collect();
    assert_eq!(got, vec![(6, "A=1\n"), (12, "echo \"$A\"\n")]);
    assert!(walkthrough(Path::new("y.md"), "```sh\nls\n```\n").is_none());
}
