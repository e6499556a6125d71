//! Redis Cluster's key slots: which of the 16,384 slots a key lives in.
//!
//! The cluster store splits a batch by slot with it, and [`Keys`](super::Keys)
//! picks the tags of its shards with it, so that shards cover the slot space
//! evenly whatever the cluster's size.

/// How many slots a Redis Cluster has.
pub const SLOTS: u16 = 16_384;

/// The slot of `key`: CRC16 (XMODEM) of its hash tag, the part between the first
/// `{` and the next `}` when that part is not empty, or of the whole key.
pub fn slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOTS
}

/// A key (`{n}`) that lives in `slot`, for commands that must reach the node
/// serving a given slot.
pub fn key_in(target: u16) -> &'static str {
    static KEYS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let mut keys = vec![String::new(); usize::from(SLOTS)];
        let mut missing = usize::from(SLOTS);
        let mut n = 0u32;
        while missing > 0 {
            let key = format!("{{{n}}}");
            let at = usize::from(slot(key.as_bytes()));
            if keys[at].is_empty() {
                keys[at] = key;
                missing -= 1;
            }
            n += 1;
        }
        keys
    });
    &keys[usize::from(target % SLOTS)]
}

fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|b| *b == b'{') else {
        return key;
    };
    match key[open + 1..].iter().position(|b| *b == b'}') {
        Some(len) if len > 0 => &key[open + 1..open + 1 + len],
        _ => key,
    }
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for b in bytes {
        crc ^= u16::from(*b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_cluster_specification() {
        // The specification's check value, and slots redis-cli reports.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12_182);
        assert_eq!(slot(b"bar"), 5_061);
    }

    #[test]
    fn every_slot_has_a_key() {
        for s in [0, 1, 975, 8191, SLOTS - 1] {
            assert_eq!(slot(key_in(s).as_bytes()), s);
        }
    }

    #[test]
    fn a_hash_tag_decides_the_slot() {
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_ne!(
            slot(b"foo{}{bar}"),
            slot(b"bar"),
            "an empty tag hashes the whole key"
        );
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
        assert_eq!(slot(b"foo{bar}{zap}"), slot(b"bar"));
    }
}
