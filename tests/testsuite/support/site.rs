//! A "site": a network namespace of the fleet's own (`ip netns add`) that
//! its hosts' sshd run in, so that this machine cannot reach them, as a
//! controller cannot reach hosts behind a bastion. Inside, the namespace's
//! own `lo` carries the hosts' usual `127.A.B.C:10022` addresses. The hosts
//! meant to be reachable (the bastions) get a forwarder: a listener on
//! their address in this machine's namespace, in the test process, that
//! connects each accepted connection to the same address inside the site
//! (from a thread that entered the namespace with `setns`). No veth, no
//! address outside loopback and the namespace.
//!
//! The namespace is named `swpush-PID-SLOT`, recorded in `FLEET_DIR/netns`
//! for the reaper, which deletes it with the fleet (`ip netns del`).

use std::fs::{self, File};
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{self, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

/// The fleet's network namespace and the forwarders into it.
pub struct Site {
    name: String,
    pub(super) forwarders: Vec<Forwarder>,
}

/// A listener on this machine forwarding to one host inside the site.
pub(super) struct Forwarder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Site {
    pub(super) fn create(fleet_dir: &Path, slot: u32) -> Site {
        let name = format!("swpush-{}-{slot}", process::id());
        // A namespace left by a killed run of a process with the same pid.
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        fs::write(fleet_dir.join("netns"), &name)
            .unwrap_or_else(|e| panic!("cannot record the site's namespace: {e}"));
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Site {
            name,
            forwarders: Vec::new(),
        }
    }

    /// The namespace's file, for `setns` and `nsenter --net=`.
    pub fn namespace(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// `nsenter --net=NS unshare`: a host's start command, inside the site.
    pub(super) fn enter_command(&self) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.namespace().display()))
            .arg("unshare");
        command
    }

    /// Forwards `addr` on this machine to `addr` inside the site.
    pub(super) fn forward(&self, addr: SocketAddr) -> Forwarder {
        let listener = TcpListener::bind(addr)
            .unwrap_or_else(|e| panic!("cannot listen on {addr} for the site: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let namespace = self.namespace();
        thread::spawn(move || {
            for outside in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(outside) = outside else { continue };
                let namespace = namespace.clone();
                thread::spawn(move || {
                    if let Ok(inside) = enter(&namespace).and_then(|()| TcpStream::connect(addr)) {
                        splice(outside, inside);
                    }
                });
            }
        });
        Forwarder { addr, stop }
    }

    pub(super) fn stop_forwarding(&mut self) {
        for forwarder in self.forwarders.drain(..) {
            forwarder.stop.store(true, Ordering::SeqCst);
            // Wakes the listener so that it sees the flag and closes.
            let _ = TcpStream::connect(forwarder.addr);
        }
    }
}

/// Runs `f` on a thread that entered the network namespace `namespace`.
pub fn within<T: Send>(namespace: &Path, f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|scope| {
        let worker = scope.spawn(|| {
            enter(namespace)
                .unwrap_or_else(|e| panic!("cannot enter {}: {e}", namespace.display()));
            f()
        });
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Moves the calling thread (only it) into the network namespace.
fn enter(namespace: &Path) -> io::Result<()> {
    let file = File::open(namespace)?;
    // SAFETY: setns on a valid open namespace fd; it changes only the
    // calling thread's network namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Copies both ways until each side has said all it had.
fn splice(a: TcpStream, b: TcpStream) {
    let (Ok(mut a2), Ok(mut b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let upstream = thread::spawn(move || {
        let _ = io::copy(&mut a2, &mut b2);
        let _ = b2.shutdown(Shutdown::Write);
    });
    let (mut a, mut b) = (a, b);
    let _ = io::copy(&mut b, &mut a);
    let _ = a.shutdown(Shutdown::Write);
    let _ = upstream.join();
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip (apt-get install iproute2): {e}"));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
