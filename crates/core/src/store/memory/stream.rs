//! The memory store's streams and schedules, what the delivery outbox runs on:
//! appends, reads and claims by consumer groups, acknowledgements, and
//! schedules released into a stream when due, with Redis's semantics.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::{wrong_type, Entry, Inner, Value};
use crate::store::{Op, Reply, StoreError};

#[derive(Debug, Clone, Default)]
pub(super) struct StreamData {
    next: u64,
    entries: BTreeMap<u64, Vec<u8>>,
    groups: HashMap<String, Group>,
}

#[derive(Debug, Clone, Default)]
struct Group {
    last: u64,
    pending: HashMap<u64, (String, Instant)>,
}

fn entry_id(seq: u64) -> String {
    format!("{seq}-0")
}

fn parse_id(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

impl Inner {
    /// Applies a stream or schedule op; [`Inner::apply`] hands over only those.
    pub(super) fn apply_stream(&mut self, op: Op, now: Instant) -> Result<Reply, StoreError> {
        Ok(match op {
            Op::StreamAdd { stream, entry } => {
                Reply::Value(Some(self.stream_add(&stream, entry, now)?.into_bytes()))
            }
            Op::StreamAddIfPresent {
                index,
                field,
                stream,
                entry,
                decoys,
                decoy,
            } => {
                let present = match self.live(&index, now) {
                    Some(Entry {
                        value: Value::Map(m),
                        ..
                    }) => m.contains_key(&field),
                    Some(_) => return Err(wrong_type(&index)),
                    None => false,
                };
                if present {
                    self.stream_add(&stream, entry, now)?;
                } else {
                    self.stream_add(&decoys, decoy, now)?;
                    // Kept at one entry, like Redis's MAXLEN 1.
                    let s = self.stream_mut(&decoys, now)?;
                    while s.entries.len() > 1 {
                        s.entries.pop_first();
                    }
                }
                Reply::Done
            }
            Op::StreamRead {
                stream,
                group,
                consumer,
                count,
            } => {
                let s = self.stream_mut(&stream, now)?;
                let g = s.groups.entry(group).or_default();
                let fresh: Vec<(u64, Vec<u8>)> = s
                    .entries
                    .range(g.last + 1..)
                    .take(count)
                    .map(|(k, v)| (*k, v.clone()))
                    .collect();
                for (seq, _) in &fresh {
                    g.last = g.last.max(*seq);
                    g.pending.insert(*seq, (consumer.clone(), now));
                }
                Reply::Entries(fresh.into_iter().map(|(k, v)| (entry_id(k), v)).collect())
            }
            Op::StreamClaim {
                stream,
                group,
                consumer,
                min_idle,
                count,
            } => {
                let s = self.stream_mut(&stream, now)?;
                let g = s.groups.entry(group).or_default();
                g.pending.retain(|seq, _| s.entries.contains_key(seq));
                let mut idle: Vec<u64> = g
                    .pending
                    .iter()
                    .filter(|(_, (_, at))| now.saturating_duration_since(*at) >= min_idle)
                    .map(|(seq, _)| *seq)
                    .collect();
                idle.sort_unstable();
                idle.truncate(count);
                let mut out = Vec::new();
                for seq in idle {
                    g.pending.insert(seq, (consumer.clone(), now));
                    if let Some(v) = s.entries.get(&seq) {
                        out.push((entry_id(seq), v.clone()));
                    }
                }
                Reply::Entries(out)
            }
            Op::StreamAck { stream, group, ids } => {
                for seq in ids.iter().filter_map(|id| parse_id(id)) {
                    let s = self.stream_mut(&stream, now)?;
                    if let Some(g) = s.groups.get_mut(&group) {
                        g.pending.remove(&seq);
                    }
                    s.entries.remove(&seq);
                }
                Reply::Done
            }
            Op::Schedule {
                schedule,
                due_ms,
                entry,
            } => {
                self.live(&schedule, now);
                let e = self
                    .entries
                    .entry(schedule.clone())
                    .or_insert_with(|| Entry {
                        value: Value::Schedule(Vec::new()),
                        expires: None,
                    });
                match &mut e.value {
                    Value::Schedule(items) => items.push((due_ms, entry)),
                    _ => return Err(wrong_type(&schedule)),
                }
                Reply::Done
            }
            Op::Release {
                schedule,
                stream,
                now_ms,
                max,
            } => {
                let due: Vec<Vec<u8>> = match self.live(&schedule, now) {
                    Some(Entry {
                        value: Value::Schedule(items),
                        ..
                    }) => {
                        items.sort_by_key(|(at, _)| *at);
                        let n = items
                            .iter()
                            .take(max)
                            .take_while(|(at, _)| *at <= now_ms)
                            .count();
                        items.drain(..n).map(|(_, e)| e).collect()
                    }
                    Some(_) => return Err(wrong_type(&schedule)),
                    None => Vec::new(),
                };
                let moved = due.len() as i64;
                for e in due {
                    self.stream_add(&stream, e, now)?;
                }
                Reply::Int(moved)
            }
            // `apply` sends no other op here.
            _ => return Err(StoreError::Protocol("not a stream op".into())),
        })
    }

    fn stream_mut(&mut self, key: &str, now: Instant) -> Result<&mut StreamData, StoreError> {
        self.live(key, now);
        let entry = self.entries.entry(key.to_owned()).or_insert_with(|| Entry {
            value: Value::Stream(StreamData::default()),
            expires: None,
        });
        match &mut entry.value {
            Value::Stream(s) => Ok(s),
            _ => Err(wrong_type(key)),
        }
    }

    fn stream_add(
        &mut self,
        key: &str,
        entry: Vec<u8>,
        now: Instant,
    ) -> Result<String, StoreError> {
        let s = self.stream_mut(key, now)?;
        s.next += 1;
        let seq = s.next;
        s.entries.insert(seq, entry);
        Ok(entry_id(seq))
    }
}
