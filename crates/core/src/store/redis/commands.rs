//! The commands of one pipeline, as the store queues them: every argument of
//! every command in one buffer.
//!
//! redis-rs's `Pipeline` keeps a `Cmd` per command, each with two vectors that
//! grow argument by argument, and encodes them into a third when sent: about
//! twenty allocations and two copies for a login's three pipelines. Here the
//! arguments go once into one buffer (through redis-rs's own `ToRedisArgs`, so
//! every value is written as it would be there), and [`Commands::encode`]
//! writes the RESP the server reads in one go. A `Pipeline` is made from them
//! only for the connections that need one (a cluster, TLS, redis-rs's own) and
//! for the rare second tries (a script the server did not know, an index add
//! redone by script).

use std::io;

use redis::{Cmd, Pipeline, RedisWrite, ToRedisArgs};

/// A pipeline's commands, each a name and its arguments.
#[derive(Default)]
pub(super) struct Commands {
    /// Every argument's bytes, one after the other.
    data: Vec<u8>,
    /// Where each argument ends in `data` (it starts where the one before ends).
    ends: Vec<usize>,
    /// The index in `ends` of each command's first argument (its name).
    starts: Vec<usize>,
}

impl Commands {
    /// No commands yet.
    pub fn new() -> Self {
        Self {
            data: Vec::with_capacity(256),
            ends: Vec::with_capacity(16),
            starts: Vec::with_capacity(4),
        }
    }

    /// Starts the command `name`; the `arg`s that follow are its arguments.
    pub fn cmd(&mut self, name: &str) -> &mut Self {
        self.starts.push(self.ends.len());
        self.write_arg(name.as_bytes());
        self
    }

    /// Adds `arg` (several arguments for a list) to the last command started.
    pub fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        arg.write_redis_args(self);
        self
    }

    /// Adds a command made by redis-rs.
    pub fn add_command(&mut self, cmd: &Cmd) {
        self.starts.push(self.ends.len());
        self.write_arg(super::name(cmd));
        for a in super::args(cmd) {
            self.write_arg(a);
        }
    }

    /// How many commands there are.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// The indexes in `ends` of command `i`'s arguments.
    fn span(&self, i: usize) -> std::ops::Range<usize> {
        self.starts[i]..self.starts.get(i + 1).copied().unwrap_or(self.ends.len())
    }

    /// The arguments of command `i`, its name first.
    pub fn command(&self, i: usize) -> impl Iterator<Item = &[u8]> + '_ {
        self.span(i).map(move |a| {
            let start = if a == 0 { 0 } else { self.ends[a - 1] };
            &self.data[start..self.ends[a]]
        })
    }

    /// Every command as RESP, ready to write to the server.
    pub fn encode(&self) -> Vec<u8> {
        // Each argument's header is at most `$` + 20 digits + CRLF, and its
        // bytes are followed by a CRLF; each command's at most 24 bytes.
        let mut out = Vec::with_capacity(self.data.len() + self.ends.len() * 25 + self.len() * 24);
        let mut digits = itoa::Buffer::new();
        for i in 0..self.len() {
            out.push(b'*');
            out.extend_from_slice(digits.format(self.span(i).len()).as_bytes());
            out.extend_from_slice(b"\r\n");
            for arg in self.command(i) {
                out.push(b'$');
                out.extend_from_slice(digits.format(arg.len()).as_bytes());
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(arg);
                out.extend_from_slice(b"\r\n");
            }
        }
        out
    }

    /// Command `i` as redis-rs's.
    pub fn to_cmd(&self, i: usize) -> Cmd {
        let mut args = self.command(i);
        let mut cmd =
            redis::cmd(std::str::from_utf8(args.next().unwrap_or_default()).unwrap_or(""));
        for a in args {
            cmd.arg(a);
        }
        cmd
    }

    /// The same commands as a redis-rs pipeline (see [`super::pipeline`]).
    pub fn to_pipeline(&self) -> Pipeline {
        let mut pipe = super::pipeline(false);
        for i in 0..self.len() {
            pipe.add_command(self.to_cmd(i));
        }
        pipe
    }
}

impl RedisWrite for Commands {
    fn write_arg(&mut self, arg: &[u8]) {
        self.data.extend_from_slice(arg);
        self.ends.push(self.data.len());
    }

    fn writer_for_next_arg(&mut self) -> impl io::Write + '_ {
        NextArg { to: self }
    }
}

/// An argument being written: it ends when the writer is dropped.
struct NextArg<'a> {
    to: &'a mut Commands,
}

impl io::Write for NextArg<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.to.data.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for NextArg<'_> {
    fn drop(&mut self) {
        self.to.ends.push(self.to.data.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What redis-rs writes for the same commands.
    fn packed(pipe: &Pipeline) -> Vec<u8> {
        pipe.get_packed_pipeline()
    }

    #[test]
    fn encodes_as_redis_rs_does() {
        let mut ours = Commands::new();
        let mut theirs = super::super::pipeline(false);
        let ids = vec!["1-0".to_owned(), "2-0".to_owned()];
        ours.cmd("SET")
            .arg("k")
            .arg(b"v\r\n\0".to_vec())
            .arg("PX")
            .arg(300_000u64);
        theirs
            .cmd("SET")
            .arg("k")
            .arg(b"v\r\n\0".to_vec())
            .arg("PX")
            .arg(300_000u64);
        ours.cmd("XACK").arg("s").arg("g").arg(&ids);
        theirs.cmd("XACK").arg("s").arg("g").arg(&ids);
        ours.cmd("LRANGE").arg("l").arg(0).arg(-1i64);
        theirs.cmd("LRANGE").arg("l").arg(0).arg(-1i64);
        ours.cmd("GET").arg("");
        theirs.cmd("GET").arg("");
        let mut script = redis::cmd("EVALSHA");
        script.arg("abc").arg(1).arg("key").arg(usize::MAX);
        ours.add_command(&script);
        theirs.add_command(script);
        ours.cmd("PING");
        theirs.cmd("PING");
        assert_eq!(ours.len(), 6);
        assert_eq!(ours.encode(), packed(&theirs));
        assert_eq!(packed(&ours.to_pipeline()), packed(&theirs));
        let xack: Vec<&[u8]> = ours.command(1).collect();
        assert_eq!(xack, [&b"XACK"[..], b"s", b"g", b"1-0", b"2-0"]);
    }

    #[test]
    fn none_encode_to_nothing() {
        let none = Commands::new();
        assert_eq!(none.len(), 0);
        assert!(none.encode().is_empty());
        assert!(none.to_pipeline().is_empty());
    }
}
