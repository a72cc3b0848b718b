//! `-i 'NAME,'`: an inline host list (issue 10 item 8), on the real fleet.
//! The name resolves through a private `~/.ssh/config` (HostName, Port,
//! User, IdentityFile), as any inventory host does, and one install lands.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::SSH_PORT;
use crate::support::world::*;

#[test]
fn an_inline_host_list_installs_through_ssh_config() {
    let world = World::start_trusted(&["target"]);
    let fleet = &world.fleet;
    let addr = fleet.host("target").addr;
    let config = fleet.home().join(".ssh/config");
    std::fs::write(
        &config,
        format!(
            "Host webby\n  HostName {addr}\n  Port {SSH_PORT}\n  User root\n  IdentityFile {}\n",
            fleet.login_key().display()
        ),
    )
    .expect("ssh config");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (code, report) = world.push("install", Path::new("webby,"), &world.hello, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(status_of(&report, "webby").0, "installed", "{report}");
}
