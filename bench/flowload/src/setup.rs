//! The users and the MD5 self-test, read from the same environment as bench/lua/flow.lua.

use crate::http::md5_hex;

/// One flow user: the username the requests carry and its HA1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `name@application.account`.
    pub name: String,
    /// MD5("<bare name>:voximplant.com:<password>"), lowercase hex.
    pub ha1: String,
}

/// flow.lua's `^(%S+) (%x+)$` lines of BENCH_USERS_FILE; other lines are skipped.
pub fn parse_users(text: &str) -> Vec<User> {
    text.split('\n')
        .filter_map(|line| {
            let (name, ha1) = line.split_once(' ')?;
            let ok = !name.is_empty()
                && !name.chars().any(char::is_whitespace)
                && !ha1.is_empty()
                && ha1.bytes().all(|b| b.is_ascii_hexdigit());
            ok.then(|| User {
                name: name.to_owned(),
                ha1: ha1.to_owned(),
            })
        })
        .collect()
}

/// md5.lua's self-test: each `^(%x+) (.*)$` line of BENCH_MD5_VECTORS is an md5sum of its
/// input (one line, possibly empty). Returns how many were checked; none is an error.
pub fn check_vectors(data: &[u8]) -> Result<usize, String> {
    let mut n = 0;
    for line in data.split(|b| *b == b'\n') {
        let Some(space) = line.iter().position(|b| *b == b' ') else {
            continue;
        };
        let (want, input) = (&line[..space], &line[space + 1..]);
        if want.is_empty() || !want.iter().all(u8::is_ascii_hexdigit) {
            continue;
        }
        let got = md5_hex(input);
        if got.as_bytes() != want {
            return Err(format!(
                "md5 self-test failed for {:?} ({} bytes): got {got}, md5sum says {}",
                String::from_utf8_lossy(input),
                input.len(),
                String::from_utf8_lossy(want)
            ));
        }
        n += 1;
    }
    if n == 0 {
        return Err("md5 self-test: no vectors".to_owned());
    }
    Ok(n)
}

/// Each user's HA1 against MD5("<bare user>:voximplant.com:<password>"), the bare user being
/// the part of the name before '@'.
pub fn check_ha1s(users: &[User], password: &str) -> Result<(), String> {
    for u in users {
        let bare = match u.name.split_once('@') {
            Some((bare, _)) if !bare.is_empty() => bare,
            _ => return Err(format!("username without '@': {}", u.name)),
        };
        let mine = md5_hex(format!("{bare}:voximplant.com:{password}").as_bytes());
        if mine != u.ha1 {
            return Err(format!(
                "HA1 of {bare}: flowload's MD5 says {mine}, `authgate ha1` says {}",
                u.ha1
            ));
        }
    }
    Ok(())
}

/// A required environment variable.
fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

/// Reads the environment, runs the self-test and returns the users; the message is what
/// flow.lua prints on success.
pub fn load() -> Result<(Vec<User>, String), String> {
    let vectors_path = env("BENCH_MD5_VECTORS")?;
    let vectors = std::fs::read(&vectors_path)
        .map_err(|e| format!("cannot open md5 test vectors {vectors_path}: {e}"))?;
    let n = check_vectors(&vectors)?;
    let users_path = env("BENCH_USERS_FILE")?;
    let users = parse_users(
        &std::fs::read_to_string(&users_path)
            .map_err(|e| format!("cannot read {users_path}: {e}"))?,
    );
    let password = env("BENCH_PASSWORD")?;
    check_ha1s(&users, &password)?;
    let msg = format!(
        "md5 self-test: {n} md5sum vectors and {} HA1s from `authgate ha1` match",
        users.len()
    );
    Ok((users, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_in_run_sh_format() {
        // As run.sh writes them: `md5sum` of each input, the empty one included.
        let data = b"d41d8cd98f00b204e9800998ecf8427e \n\
0cc175b9c0f1b6a831c399e269772661 a\n\
f96b697d7cb7938d525a2f31aaf161d0 message digest\n";
        assert_eq!(check_vectors(data), Ok(3));
        let bad = b"0cc175b9c0f1b6a831c399e269772661 b\n";
        assert!(check_vectors(bad).is_err());
        assert!(check_vectors(b"\n\n").is_err());
        // Every padding boundary (one block or two), values from md5sum.
        let mut lines = Vec::new();
        for (c, n, want) in [
            ('x', 55, "04364420e25c512fd958a70738aa8f72"),
            ('y', 56, "6c830a5d23df58dbe0171eb5639bf3e4"),
            ('z', 63, "cac9376765157678c96c250aee8ffb87"),
            ('w', 64, "e03817e1560f2bda422e74827ecead8c"),
            ('v', 65, "8e628dd29d63f51c6e6ee2e7cce78883"),
        ] {
            lines.push(format!("{want} {}", c.to_string().repeat(n)));
        }
        assert_eq!(check_vectors(lines.join("\n").as_bytes()), Ok(5));
    }

    #[test]
    fn users_and_ha1s() {
        let ha1 = "ed0b761222371ac9eab34bbfb26e474b".to_owned(); // md5sum
        assert_eq!(md5_hex(b"myuser:voximplant.com:mypass123"), ha1);
        let text = format!(
            "myuser@myapp.myaccount.voximplant.com {ha1}\nnot a user line\n\nbench2@myapp {}\n",
            md5_hex(b"bench2:voximplant.com:mypass123")
        );
        let users = parse_users(&text);
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].name, "myuser@myapp.myaccount.voximplant.com");
        assert_eq!(users[0].ha1, ha1);
        assert_eq!(check_ha1s(&users, "mypass123"), Ok(()));
        assert!(check_ha1s(&users, "other").is_err());
        let no_at = vec![User {
            name: "myuser".to_owned(),
            ha1,
        }];
        assert!(check_ha1s(&no_at, "mypass123").is_err());
    }
}
