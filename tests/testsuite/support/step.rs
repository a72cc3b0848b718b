//! The client step driven by hand, as the controller would drive it, for
//! tests that must answer it themselves: sign an order the controller would
//! never sign, send other bytes than the package, or run the step under
//! another shell. [`drive`] speaks the step's protocol over `ssh`;
//! [`with_args`] and [`under_busybox`] change the command line the
//! controller would start (`World::step_command`).

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, Stdio};

use crate::support::world::World;

/// The tools the busybox runs take from busybox; `extra` ones may be added.
pub const BUSYBOX_TOOLS: &str = "tar sha256sum head od tr cut sed awk mktemp mv ln rm mkdir cat \
                                 date wc tail grep dirname sleep chmod chown find";

/// What is sent when the step asks for SIZE bytes, on a thread of its own;
/// returns the step's stdin, to keep it open until the step is done (its
/// end tells the step that the controller is gone), and how many bytes it
/// wrote.
pub type Sender = Box<dyn FnOnce(ChildStdin, u64) -> (Option<ChildStdin>, u64) + Send>;

/// Sends `bytes`, whatever size was asked for.
pub fn bytes(bytes: Vec<u8>) -> Sender {
    Box::new(move |mut pipe, _| {
        let _ = pipe.write_all(&bytes);
        (Some(pipe), bytes.len() as u64)
    })
}

/// Sends `bytes`, and checks that the step asked for exactly that many.
pub fn exactly(bytes: Vec<u8>) -> Sender {
    Box::new(move |mut pipe, size| {
        assert_eq!(size, bytes.len() as u64, "the step asked for another size");
        let _ = pipe.write_all(&bytes);
        (Some(pipe), bytes.len() as u64)
    })
}

/// The step `command` with its `op` and `name` arguments replaced (the
/// controller's command is for `op=install name=hello`).
pub fn with_args(command: &str, op: &str, name: &str) -> String {
    let args = " swpush-step 'op=install' 'name=hello' ";
    assert!(command.contains(args), "the step's arguments moved");
    command.replacen(args, &format!(" swpush-step 'op={op}' 'name={name}' "), 1)
}

/// The step `command` under busybox ash, with busybox's [`BUSYBOX_TOOLS`]
/// and `extra` ones first on PATH. The links live in the host's private
/// /var/lib, outside every path the tests check for leftovers.
pub fn under_busybox(command: &str, extra: &str) -> String {
    let tools = format!("{BUSYBOX_TOOLS} {extra}");
    command.replacen(
        "/bin/sh -c ",
        &format!(
            "mkdir -p /var/lib/bbtools && for t in {}; do ln -sf /bin/busybox /var/lib/bbtools/$t; done; \
             PATH=/var/lib/bbtools:$PATH busybox sh -c ",
            tools.trim_end()
        ),
        1,
    )
}

/// Runs the step `command` on `host` over ssh as a controller would:
/// answers the hello with `answer(challenge)`, and has `send` write to the
/// step when it asks for the package. Returns the completion line (after
/// `swpush done `) and, if the step asked, how many bytes were written.
pub fn drive(
    world: &World,
    host: &str,
    command: &str,
    answer: &mut dyn FnMut(&str) -> String,
    send: Sender,
) -> (String, Option<u64>) {
    drive_over(world.fleet.ssh_command(host, command), answer, send)
}

/// [`drive`] over the `ssh` command line `ssh` (one that runs the step).
pub fn drive_over(
    mut ssh: Command,
    answer: &mut dyn FnMut(&str) -> String,
    send: Sender,
) -> (String, Option<u64>) {
    let mut child = ssh
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take();
    let mut send = Some(send);
    let mut sending = None;
    let mut done = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix("swpush hello 1 ") {
            let challenge = rest.split(' ').next().unwrap();
            if let Some(pipe) = stdin.as_mut() {
                let _ = pipe.write_all(answer(challenge).as_bytes());
            }
        } else if let Some(size) = line.strip_prefix("swpush need ") {
            let size: u64 = size.parse().unwrap();
            let (pipe, send) = (stdin.take().unwrap(), send.take().unwrap());
            sending = Some(std::thread::spawn(move || send(pipe, size)));
        } else if let Some(rest) = line.strip_prefix("swpush done ") {
            done = rest.to_owned();
            break;
        }
    }
    let written = sending.map(|thread| thread.join().unwrap().1);
    drop(stdin);
    let _ = child.wait();
    (done, written)
}
