//! Just enough HTTP/1.1 for the flow: two request templates per user, written once, and a
//! response parser that reads the status line, `Content-Length` and the body, and refuses
//! anything else it would have to frame differently (chunked bodies, no length).

use md5::{Digest, Md5};

/// Where a response ends, once it is all in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Bytes of the status line and headers, the blank line included.
    pub head_len: usize,
    /// Bytes of the body.
    pub body_len: usize,
    /// The server said `Connection: close` (or spoke HTTP/1.0 without keep-alive).
    pub close: bool,
}

impl Response {
    /// The whole response's length.
    pub fn total_len(&self) -> usize {
        self.head_len + self.body_len
    }

    /// The body, out of the buffer the response was parsed from.
    pub fn body<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.head_len..self.total_len()).unwrap_or_default()
    }
}

/// Headers larger than this are not an answer of the gateway's.
const MAX_HEAD: usize = 16 * 1024;
/// Nor are bodies larger than this.
pub const MAX_BODY: usize = 1024 * 1024;

/// Parses the response at the start of `buf`: `Ok(None)` while it is incomplete, an error
/// for anything this client does not speak (the run stops on it: see main.rs).
pub fn parse_response(buf: &[u8]) -> Result<Option<Response>, String> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(format!("no end of headers in {} bytes", buf.len()));
        }
        return Ok(None);
    };
    let head_len = end + 4;
    let head = &buf[..end];
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let (http10, rest) = if let Some(r) = status_line.strip_prefix(b"HTTP/1.1 ") {
        (false, r)
    } else if let Some(r) = status_line.strip_prefix(b"HTTP/1.0 ") {
        (true, r)
    } else {
        return Err(format!(
            "not an HTTP/1.x status line: {:?}",
            shown(status_line)
        ));
    };
    let status = match rest {
        [a, b, c, tail @ ..]
            if a.is_ascii_digit()
                && b.is_ascii_digit()
                && c.is_ascii_digit()
                && (tail.is_empty() || tail[0] == b' ') =>
        {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(format!("bad status line: {:?}", shown(status_line))),
    };
    if status < 200 {
        return Err(format!("informational answer {status} (not expected)"));
    }
    let mut length = None;
    let mut close = http10;
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return Err(format!("bad header line: {:?}", shown(line)));
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| format!("bad Content-Length: {:?}", shown(value)))?;
            if length.is_some_and(|l| l != n) {
                return Err("two different Content-Length headers".to_owned());
            }
            if n > MAX_BODY {
                return Err(format!("body of {n} bytes (the gateway's are small)"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(format!(
                "Transfer-Encoding: {} is not supported (Content-Length only)",
                String::from_utf8_lossy(value)
            ));
        } else if name.eq_ignore_ascii_case(b"connection") {
            if value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if value.eq_ignore_ascii_case(b"keep-alive") {
                close = false;
            }
        }
    }
    let body_len = match length {
        Some(n) => n,
        None if status == 204 || status == 304 => 0,
        None => return Err(format!("answer {status} without Content-Length")),
    };
    if buf.len() < head_len + body_len {
        return Ok(None);
    }
    Ok(Some(Response {
        status,
        head_len,
        body_len,
        close,
    }))
}

/// First position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Lua's `%s`: space, \t, \n, \v, \f, \r.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The bytes without leading and trailing whitespace.
fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !is_space(*b)).unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !is_space(*b))
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// What follows `"name"` and a colon (whitespace allowed around it), at each place the quoted
/// name occurs, first to last.
fn after_field<'a>(body: &'a [u8], name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut at = 0;
    std::iter::from_fn(move || loop {
        let rest = body.get(at..)?;
        let i = find(rest, b"\"")?;
        let tail = &rest[i + 1..];
        at += i + 1;
        let Some(after_name) = tail.strip_prefix(name).and_then(|t| t.strip_prefix(b"\"")) else {
            continue;
        };
        let after_name = &after_name[after_name.iter().take_while(|b| is_space(**b)).count()..];
        let Some(value) = after_name.strip_prefix(b":") else {
            continue;
        };
        return Some(&value[value.iter().take_while(|b| is_space(**b)).count()..]);
    })
}

/// flow.lua's `body:match('"key"%s*:%s*"([^"]+)"')`: the first string value of a `"key"`
/// field, not empty.
pub fn json_key(body: &[u8]) -> Option<&[u8]> {
    after_field(body, b"key").find_map(|v| {
        let v = v.strip_prefix(b"\"")?;
        let end = v.iter().position(|b| *b == b'"')?;
        (end > 0).then(|| &v[..end])
    })
}

/// flow.lua's `body:find('"result"%s*:%s*true')`.
pub fn json_result_true(body: &[u8]) -> bool {
    after_field(body, b"result").any(|v| v.starts_with(b"true"))
}

/// A JSON string literal's inside, for a username (quotes, backslashes, controls escaped).
pub(crate) fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The POST request for `path` with a JSON body, as wrk.format writes it.
fn post(authority: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One user's two requests, written once: the key request never changes, and the login
/// changes only in its 32 hex digits, overwritten in place for each key.
#[derive(Debug, Clone)]
pub struct Requests {
    /// `POST /v1/login/one-time-key/request {"username":U}`.
    key: Vec<u8>,
    /// `POST /v1/login/one-time-key {"username":U,"hash":H}`, H rewritten per key.
    login: Vec<u8>,
    /// Where H starts in `login`.
    hash_at: usize,
    /// The user's HA1, lowercase hex.
    ha1: Vec<u8>,
}

/// Placeholder for the hash in the login template.
const HASH_SLOT: &str = "00000000000000000000000000000000";

impl Requests {
    /// The requests of `username` (whose HA1 is `ha1`) to the gateway at `authority`.
    pub fn new(authority: &str, username: &str, ha1: &str) -> Self {
        let u = json_escape(username);
        let key = post(
            authority,
            "/v1/login/one-time-key/request",
            &format!("{{\"username\":\"{u}\"}}"),
        );
        let login = post(
            authority,
            "/v1/login/one-time-key",
            &format!("{{\"username\":\"{u}\",\"hash\":\"{HASH_SLOT}\"}}"),
        );
        // The body is at the end: the slot is 32 + 2 bytes (`"}`) before it.
        let hash_at = login.len() - HASH_SLOT.len() - 2;
        Self {
            key,
            login,
            hash_at,
            ha1: ha1.as_bytes().to_vec(),
        }
    }

    /// The key request.
    pub fn key_request(&self) -> &[u8] {
        &self.key
    }

    /// Writes the login's hash for `key`: MD5(key "|" HA1), lowercase hex.
    pub fn set_key(&mut self, key: &[u8]) {
        let mut h = Md5::new();
        h.update(key);
        h.update(b"|");
        h.update(&self.ha1);
        let digest = h.finalize();
        if let Some(slot) = self.login.get_mut(self.hash_at..self.hash_at + 32) {
            hex_into(&digest, slot);
        }
    }

    /// The login request with the hash of the last key given to `set_key`.
    pub fn login_request(&self) -> &[u8] {
        &self.login
    }
}

/// Lowercase hex of `bytes` into `out` (twice as long).
pub fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 15)];
    }
}

/// Lowercase hex MD5 of `input`.
pub fn md5_hex(input: &[u8]) -> String {
    let digest = Md5::digest(input);
    let mut out = [0u8; 32];
    hex_into(&digest, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A few bytes for an error message.
fn shown(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(120)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_ANSWER: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\n\
content-length: 58\r\ndate: Mon, 07 Dec 2026 14:00:00 GMT\r\n\r\n\
{\"result\":false,\"code\":302,\"key\":\"a1b2c3d4e5f60718293a4b\"}";

    fn parsed(buf: &[u8]) -> Option<Response> {
        match parse_response(buf) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn whole_answer() {
        let r = parsed(KEY_ANSWER).unwrap_or_else(|| panic!("incomplete"));
        assert_eq!(r.status, 200);
        assert_eq!(r.total_len(), KEY_ANSWER.len());
        assert!(!r.close);
        assert_eq!(
            json_key(r.body(KEY_ANSWER)),
            Some(&b"a1b2c3d4e5f60718293a4b"[..])
        );
    }

    #[test]
    fn every_split_point_is_incomplete_until_the_last_byte() {
        for cut in 0..KEY_ANSWER.len() {
            assert_eq!(parsed(&KEY_ANSWER[..cut]), None, "complete at {cut}");
        }
        // Read in pieces into one buffer, as the connection does.
        let mut buf = Vec::new();
        let mut done = None;
        for piece in KEY_ANSWER.chunks(7) {
            assert!(done.is_none());
            buf.extend_from_slice(piece);
            done = parsed(&buf);
        }
        assert_eq!(done.map(|r| r.total_len()), Some(KEY_ANSWER.len()));
    }

    #[test]
    fn statuses_lengths_and_connection() {
        let r = parsed(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        );
        assert_eq!(
            r.map(|r| (r.status, r.body_len, r.close)),
            Some((401, 2, true))
        );
        let r = parsed(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(r.map(|r| r.close), Some(true));
        let r = parsed(b"HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(r.map(|r| (r.status, r.body_len)), Some((204, 0)));
        let r = parsed(b"HTTP/1.1 200\r\ncontent-length:  3 \r\n\r\nabc");
        assert_eq!(r.map(|r| r.body_len), Some(3));
    }

    #[test]
    fn refuses_what_it_cannot_frame() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/2 200\r\n\r\n",
            b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
        ] {
            assert!(
                parse_response(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_response(&[b'x'; MAX_HEAD + 1]).is_err());
    }

    #[test]
    fn json_fields_as_flow_lua_matches_them() {
        assert_eq!(json_key(br#"{"key" : "abc"}"#), Some(&b"abc"[..]));
        assert_eq!(json_key(br#"{"key":""}"#), None);
        assert_eq!(json_key(br#"{"key":3}"#), None);
        assert_eq!(json_key(br#"{"monkey":"x","key":"y"}"#), Some(&b"y"[..]));
        assert_eq!(json_key(br#"{"keys":"x"}"#), None);
        assert!(json_result_true(br#"{"result":true,"x":1}"#));
        assert!(json_result_true(br#"{"result" :	true}"#));
        assert!(!json_result_true(br#"{"result":false,"code":401}"#));
        assert!(!json_result_true(br#"{"x":"result","result":false}"#));
    }

    #[test]
    fn login_template_carries_the_hash() {
        let mut r = Requests::new(
            "127.0.0.1:8080",
            "bench2@myapp",
            "0123456789abcdef0123456789abcdef",
        );
        let key_req = String::from_utf8_lossy(r.key_request()).into_owned();
        assert!(key_req.starts_with(
            "POST /v1/login/one-time-key/request HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        ));
        assert!(key_req.ends_with("Content-Length: 27\r\n\r\n{\"username\":\"bench2@myapp\"}"));
        let want = md5_hex(b"KEY|0123456789abcdef0123456789abcdef");
        r.set_key(b"KEY");
        let login = String::from_utf8_lossy(r.login_request()).into_owned();
        assert!(login.starts_with("POST /v1/login/one-time-key HTTP/1.1\r\n"));
        assert!(login.ends_with(&format!(
            "\r\n\r\n{{\"username\":\"bench2@myapp\",\"hash\":\"{want}\"}}"
        )));
        let body_len = login.len() - login.find("\r\n\r\n").map_or(0, |i| i + 4);
        assert!(login.contains(&format!("Content-Length: {body_len}\r\n")));
        // A second key overwrites the same 32 digits.
        let want2 = md5_hex(b"OTHER|0123456789abcdef0123456789abcdef");
        r.set_key(b"OTHER");
        let login2 = String::from_utf8_lossy(r.login_request()).into_owned();
        assert_eq!(login2.len(), login.len());
        assert!(login2.contains(&want2));
        assert_eq!(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\u000a");
    }

    #[test]
    fn md5_rfc_1321_vectors() {
        for (input, want) in [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ] {
            assert_eq!(md5_hex(input.as_bytes()), want, "{input:?}");
        }
    }
}
