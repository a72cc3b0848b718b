//! swpush as a library: the pieces the `swpush` binary is made of, public
//! so that integration tests can drive one step (an SSH connection, a
//! package check) against real hosts without going through the CLI.
//!
//! One push, read top to bottom: [`inventory`] picks hosts, [`package`]
//! reads the package, [`order`] signs what each host is asked to do, and the
//! commands in [`cli`] put them together.

pub mod cli;
pub mod enroll;
pub mod file_error;
pub mod fleet;
pub mod health;
pub mod inventory;
pub mod key;
pub mod lock;
pub mod look;
pub mod manual;
pub mod mirror;
pub mod open_files;
pub mod order;
pub mod outcome;
pub mod overrides;
pub mod package;
pub mod progress;
pub mod protocol;
pub mod publish;
pub mod report;
pub mod rerun;
pub mod rollout;
pub mod run;
pub mod ssh;
pub mod state_home;
pub mod status;
pub mod step;
pub mod sudo;
#[doc(hidden)]
pub mod testing;
pub mod time;
pub mod untrusted;
pub mod version;
pub mod yaml;
