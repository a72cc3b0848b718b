//! A command running on a host: its output and exit status as a stream of
//! [`Event`]s, and its stdin as a cloneable [`Stdin`] that another task can
//! write to (bytes, or a file in fixed-size chunks) while the events are
//! read.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use russh::client;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::io::AsyncReadExt;

use super::{Shared, SshError, one_line};

/// Bytes per read of [`Stdin::send_file`]. russh cuts them into packets of
/// the server's maximum size without copying; larger reads gain nothing.
const FILE_CHUNK: usize = 256 * 1024;

/// What a running remote command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Bytes the command wrote to stdout.
    Stdout(Vec<u8>),
    /// Bytes the command wrote to stderr.
    Stderr(Vec<u8>),
    /// The command exited with this status.
    Exit(u32),
    /// The command was killed by a signal (`TERM`, `KILL`, ...).
    Signal {
        name: String,
        core_dumped: bool,
        message: String,
    },
    /// The command closed its output; an exit status usually follows.
    Eof,
    /// The connection broke before the host closed the channel.
    Lost(SshError),
}

/// A command running on the host, with its stdin open.
pub struct RemoteProcess {
    read: ChannelReadHalf,
    /// Messages that arrived while [`Connection::exec`](super::Connection::exec)
    /// waited for its answer.
    pending: VecDeque<ChannelMsg>,
    stdin: Stdin,
    shared: Arc<Shared>,
    done: bool,
}

impl fmt::Debug for RemoteProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteProcess")
            .field("target", &self.shared.target)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl RemoteProcess {
    /// The command whose exec request `read` and `write` just carried;
    /// `pending` holds what arrived before the host's answer.
    pub(super) fn new(
        read: ChannelReadHalf,
        pending: VecDeque<ChannelMsg>,
        write: ChannelWriteHalf<client::Msg>,
        shared: Arc<Shared>,
    ) -> Self {
        RemoteProcess {
            read,
            pending,
            stdin: Stdin {
                write: Arc::new(write),
                shared: Arc::clone(&shared),
            },
            shared,
            done: false,
        }
    }

    /// The next thing the command did; `None` once the host closed the
    /// channel (after [`Event::Lost`] if the connection broke instead).
    pub async fn next_event(&mut self) -> Option<Event> {
        while !self.done {
            let msg = match self.pending.pop_front() {
                Some(msg) => Some(msg),
                None => self.read.wait().await,
            };
            let event = match msg {
                Some(ChannelMsg::Data { data }) => Event::Stdout(data.into()),
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => Event::Stderr(data.into()),
                Some(ChannelMsg::ExitStatus { exit_status }) => Event::Exit(exit_status),
                Some(ChannelMsg::ExitSignal {
                    signal_name,
                    core_dumped,
                    error_message,
                    ..
                }) => Event::Signal {
                    name: signal_name_of(&signal_name),
                    core_dumped,
                    message: error_message,
                },
                Some(ChannelMsg::Eof) => Event::Eof,
                Some(ChannelMsg::Close) => {
                    self.done = true;
                    return None;
                }
                Some(_) => continue,
                None => {
                    self.done = true;
                    Event::Lost(self.shared.lost_error())
                }
            };
            return Some(event);
        }
        None
    }

    /// The command's stdin; clone it to write from another task while this
    /// one reads events.
    pub fn stdin(&self) -> Stdin {
        self.stdin.clone()
    }
}

fn signal_name_of(sig: &Sig) -> String {
    let name = match sig {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(name) => name,
    };
    name.to_owned()
}

/// The writing end of a [`RemoteProcess`]'s stdin. Clones share the channel.
#[derive(Clone)]
pub struct Stdin {
    write: Arc<ChannelWriteHalf<client::Msg>>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Stdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stdin({})", self.shared.target)
    }
}

impl Stdin {
    /// Writes `data`; returns once the host's window took all of it.
    pub async fn send(&self, data: &[u8]) -> Result<(), SshError> {
        self.send_owned(data.to_vec()).await
    }

    async fn send_owned(&self, data: Vec<u8>) -> Result<(), SshError> {
        self.write
            .data_bytes(data)
            .await
            .map_err(|_| self.shared.lost_error())
    }

    /// Streams the first `len` bytes of the file at `path` in fixed-size
    /// chunks, adding each to `sent` once it is written; a file shorter than
    /// `len` is an error (it changed since its size was taken). Returns the
    /// bytes sent.
    pub async fn send_file(
        &self,
        path: &Path,
        len: u64,
        sent: &AtomicU64,
    ) -> Result<u64, SshError> {
        let local = |reason: String| SshError::LocalFile {
            target: self.shared.target.clone(),
            path: path.to_owned(),
            reason,
        };
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| local(one_line(e)))?;
        let mut remaining = len;
        while remaining > 0 {
            let size = remaining.min(FILE_CHUNK as u64) as usize;
            let mut chunk = vec![0; size];
            file.read_exact(&mut chunk).await.map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    local(format!(
                        "it is shorter than the {len} bytes expected (changed?)"
                    ))
                } else {
                    local(one_line(e))
                }
            })?;
            self.send_owned(chunk).await?;
            sent.fetch_add(size as u64, Ordering::Relaxed);
            remaining -= size as u64;
        }
        Ok(len)
    }

    /// Closes stdin: the command reads end-of-file.
    pub async fn eof(&self) -> Result<(), SshError> {
        self.write.eof().await.map_err(|_| self.shared.lost_error())
    }
}
