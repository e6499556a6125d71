//! Building the short strings of the request path (keys, tokens, addresses)
//! without `format!`, whose machinery costs about a microsecond a call there.

use std::net::IpAddr;

/// `parts` joined, in one allocation of the right size.
pub fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

/// `n` in decimal.
pub fn decimal(n: u64) -> String {
    itoa::Buffer::new().format(n).to_owned()
}

/// An address as `Display` writes it (dotted quad, or IPv6's shortest form).
pub fn address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut out = String::with_capacity(15);
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(digits.format(octet));
            }
            out
        }
        IpAddr::V6(_) => ip.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_joins_in_order() {
        assert_eq!(concat(&[]), "");
        assert_eq!(concat(&["a", "", "bc", "{d}"]), "abc{d}");
    }

    #[test]
    fn decimal_matches_display() {
        for n in [0, 7, 10, 99, 1_000, 1_799_278_619_030, u64::MAX] {
            assert_eq!(decimal(n), n.to_string());
        }
    }

    #[test]
    fn address_matches_display() {
        for raw in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "192.168.0.9",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:1.2.3.4",
        ] {
            let Ok(ip) = raw.parse::<IpAddr>() else {
                panic!("{raw} is an address");
            };
            assert_eq!(address(ip), ip.to_string(), "{raw}");
        }
    }
}
