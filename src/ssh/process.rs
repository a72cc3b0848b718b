//! A command running on a host: its output and exit status as a stream of
//! [`Event`]s, and its stdin as a cloneable [`Stdin`] that another task can
//! write to (bytes, or a file in fixed-size chunks) while the events are
//! read.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use russh::client;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Shared, SshError, one_line};

/// Bytes per read of [`Stdin::send_file`]: two of OpenSSH's 32 KiB packets
/// (russh cuts a chunk into packets without copying it). Measured at 100
/// hosts x 10 MB: 32 KiB chunks cost 55 % more CPU of the machine than
/// 64 KiB ones, whatever the number in flight.
const FILE_CHUNK: usize = 64 * 1024;

/// Chunks of one upload that may be read but not yet encrypted onto the
/// socket. russh's queues would hold much more (up to the host's window,
/// 2 MiB for OpenSSH); bounding them here keeps the controller's memory per
/// host fixed (128 KiB) whatever the package's size, while the kernel's
/// socket buffer, not this, keeps the link busy: two in flight were as fast
/// as four, at 0.7x their memory.
const CHUNKS_IN_FLIGHT: usize = 2;

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

    async fn send_owned(&self, data: impl Into<Bytes>) -> Result<(), SshError> {
        self.write
            .data_bytes(data)
            .await
            .map_err(|_| self.shared.lost_error())
    }

    /// Streams the first `len` bytes of the file at `path` in fixed-size
    /// chunks, at most [`CHUNKS_IN_FLIGHT`] of them held at once, adding each
    /// to `sent` once it is handed to the connection; a file shorter than
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
        let file = std::fs::File::open(path).map_err(|e| local(one_line(e)))?;
        let file = Arc::new(file);
        let budget = Arc::new(Semaphore::new(CHUNKS_IN_FLIGHT));
        let mut offset = 0;
        while offset < len {
            let size = (len - offset).min(FILE_CHUNK as u64) as usize;
            // Given back when russh drops the chunk's last packet, encrypted.
            let permit = Arc::clone(&budget)
                .acquire_owned()
                .await
                .map_err(|_| self.shared.lost_error())?;
            let read = {
                let file = Arc::clone(&file);
                tokio::task::spawn_blocking(move || {
                    let mut chunk = vec![0; size];
                    file.read_exact_at(&mut chunk, offset).map(|()| chunk)
                })
            };
            let chunk = read.await.map_err(|e| local(one_line(e)))?.map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    local(format!(
                        "it is shorter than the {len} bytes expected (changed?)"
                    ))
                } else {
                    local(one_line(e))
                }
            })?;
            self.send_owned(Bytes::from_owner(Held {
                chunk,
                _permit: permit,
            }))
            .await?;
            sent.fetch_add(size as u64, Ordering::Relaxed);
            offset += size as u64;
        }
        Ok(len)
    }

    /// Closes stdin: the command reads end-of-file.
    pub async fn eof(&self) -> Result<(), SshError> {
        self.write.eof().await.map_err(|_| self.shared.lost_error())
    }
}

/// A chunk of an upload with its place in the upload's budget, given back
/// when the chunk is dropped.
struct Held {
    chunk: Vec<u8>,
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.chunk
    }
}
