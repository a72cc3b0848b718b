//! Keys, certificates and agents for the tests, made by the real tools:
//! `ssh-keygen` for keys and user certificates, `ssh-agent` and `ssh-add`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Runs `command`, which must succeed; its stdout.
pub fn run(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A new ed25519 key at `path` (and `path.pub`), no passphrase, no comment.
pub fn new_key(path: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(path));
}

/// `ssh-keygen -s CA` a user certificate of `key.pub` for `principal`,
/// valid for the hour around now, as `KEY-cert.pub` (where OpenSSH and
/// swpush look for it); its path.
pub fn certify_user(ca: &Path, key: &Path, principal: &str) -> PathBuf {
    let mut public = key.as_os_str().to_owned();
    public.push(".pub");
    run(Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(ca)
        .args(["-I", "swpush-test", "-n", principal, "-V", "-1h:+1h"])
        .arg(public));
    let mut made = key.as_os_str().to_owned();
    made.push("-cert.pub");
    PathBuf::from(made)
}

/// A real `ssh-agent` on a socket in a private directory; killed on drop.
pub struct Agent {
    child: Child,
    pub socket: PathBuf,
}

impl Agent {
    /// An empty agent on `dir/agent.sock`.
    pub fn start(dir: &Path) -> Agent {
        std::fs::create_dir_all(dir).expect("agent dir");
        let socket = dir.join("agent.sock");
        let _ = std::fs::remove_file(&socket);
        let child = Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&socket)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent (apt-get install openssh-client)");
        let agent = Agent { child, socket };
        // The socket exists from bind(), before listen(): a client that
        // connects in between is refused. Ready is when a connect works.
        super::wait_until(Duration::from_secs(5), "ssh-agent's socket", || {
            std::os::unix::net::UnixStream::connect(&agent.socket).is_ok()
        });
        agent
    }

    /// An agent holding `keys` (`ssh-add` also loads a key's `-cert.pub`).
    pub fn holding(dir: &Path, keys: &[&Path]) -> Agent {
        let agent = Agent::start(dir);
        for key in keys {
            run(Command::new("ssh-add")
                .arg("-q")
                .arg(key)
                .env("SSH_AUTH_SOCK", &agent.socket));
        }
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
