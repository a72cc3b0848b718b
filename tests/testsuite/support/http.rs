//! HTTP servers for mirror mode's tests, on a fleet's own loopback
//! addresses: the distribution's real nginx as an origin serving a
//! directory and as a per-site `proxy_cache` in front of one ([`Nginx`]),
//! and a hostile server that sends bytes for ever or stalls
//! ([`Hostile`]), which no real server does on purpose.
//!
//! nginx runs in a mount namespace of its own recorded as
//! `FLEET_DIR/hosts/_http-NAME/mntns`, so the fleet's reaper kills it with
//! the hosts however the test process ends; its workers run as root so
//! that a checkout under a 0700 directory is readable to them.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use crate::support::{Fleet, wait_until};

/// A running nginx.
pub struct Nginx {
    pub addr: SocketAddr,
    dir: PathBuf,
    child: Child,
}

/// What every nginx of the tests logs: method, path, status, bytes and the
/// cache's verdict (`-` on an origin).
const LOG_FORMAT: &str =
    "log_format swpush '$request_method $uri $status $body_bytes_sent $upstream_cache_status';";

impl Nginx {
    /// An origin serving `root` on `addr`, plus `extra` (server-level
    /// directives, such as a `location` that redirects to itself).
    pub fn origin(fleet: &Fleet, name: &str, addr: SocketAddr, root: &Path, extra: &str) -> Nginx {
        let server = format!("root {};\n        {extra}", root.display());
        Nginx::start(fleet, name, addr, "", &server)
    }

    /// A per-site cache on `addr` in front of `upstream` (`http://A:P`):
    /// every object kept after its first fetch, concurrent misses of one
    /// object collapsed into one request upstream.
    pub fn cache(fleet: &Fleet, name: &str, addr: SocketAddr, upstream: &str) -> Nginx {
        let dir = Nginx::dir_of(fleet, name);
        let http = format!(
            "proxy_cache_path {}/cache levels=1:2 keys_zone=swpush:1m max_size=1g inactive=1d use_temp_path=off;",
            dir.display()
        );
        let server = format!(
            "location / {{
            proxy_pass {upstream};
            proxy_cache swpush;
            proxy_cache_key $uri;
            proxy_cache_valid 200 1d;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 60s;
        }}"
        );
        Nginx::start(fleet, name, addr, &http, &server)
    }

    fn dir_of(fleet: &Fleet, name: &str) -> PathBuf {
        fleet.dir().join("hosts").join(format!("_http-{name}"))
    }

    fn start(fleet: &Fleet, name: &str, addr: SocketAddr, http: &str, server: &str) -> Nginx {
        let dir = Nginx::dir_of(fleet, name);
        fs::create_dir_all(dir.join("tmp")).unwrap();
        let d = dir.display();
        let config = format!(
            "user root;
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 512; }}
http {{
    {LOG_FORMAT}
    access_log {d}/access.log swpush;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    default_type application/octet-stream;
    {http}
    server {{
        listen {addr};
        {server}
    }}
}}
"
        );
        fs::write(dir.join("nginx.conf"), config).unwrap();
        let script = format!(
            "stat -L -c %i /proc/self/ns/mnt >'{d}/mntns' && exec nginx -p '{d}' -e '{d}/error.log' -c '{d}/nginx.conf'"
        );
        let child = Command::new("unshare")
            .args(["-m", "--propagation=private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("start.err")).unwrap())
            .spawn()
            .expect("nginx is needed (scripts/install-test-deps.sh installs it)");
        let mut nginx = Nginx { addr, dir, child };
        wait_until(
            Duration::from_secs(20),
            &format!("nginx {name} on {addr}"),
            || {
                if let Ok(Some(status)) = nginx.child.try_wait() {
                    panic!(
                        "nginx {name} ended ({status}): {}{}",
                        fs::read_to_string(nginx.dir.join("start.err")).unwrap_or_default(),
                        fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default()
                    );
                }
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            },
        );
        nginx
    }

    /// `http://A:P`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The access log's lines (`GET /sha256/HEX 200 BYTES MISS`).
    pub fn requests(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Requests for `path` that the access log shows.
    pub fn requests_for(&self, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|line| line.split(' ').nth(1) == Some(path))
            .count()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How [`Hostile`] answers every request.
#[derive(Clone, Copy, Debug)]
pub enum Misbehaviour {
    /// `200`, no length, zeros until the client hangs up.
    Endless,
    /// `200` with the right length, a few bytes, then nothing for ever.
    Stall,
}

/// A server that misbehaves on purpose, on its own thread.
pub struct Hostile {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Hostile {
    pub fn start(addr: SocketAddr, how: Misbehaviour, length: u64) -> Hostile {
        let listener = TcpListener::bind(addr)
            .unwrap_or_else(|e| panic!("cannot listen on {addr} for a hostile mirror: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let stopped = stopped.clone();
                thread::spawn(move || misbehave(stream, how, length, &stopped));
            }
        });
        Hostile { addr, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn misbehave(mut stream: TcpStream, how: Misbehaviour, length: u64, stop: &AtomicBool) {
    // The request's head, whatever it asks.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let zeros = [0u8; 64 * 1024];
    match how {
        Misbehaviour::Endless => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            while !stop.load(Ordering::Relaxed) && stream.write_all(&zeros).is_ok() {}
        }
        Misbehaviour::Stall => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&zeros[..16]);
            let _ = stream.flush();
            // Nothing more until the client gives up (or the test ends).
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            while !stop.load(Ordering::Relaxed) {
                match stream.read(&mut byte) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => return,
                }
            }
        }
    }
}
