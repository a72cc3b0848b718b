//! swpush's end-to-end tests: one test binary (as cargo's own
//! `tests/testsuite`), one module per capability, all sharing [`support`]:
//! the real-sshd fleet, the controller's world around it, and the helpers
//! that run swpush and read what it reports. Run one module with
//! `cargo test --test testsuite MODULE::`.

mod agent;
mod ansible;
mod ansible_oracle;
mod r#become;
mod certs;
mod cli;
mod docs;
mod faults;
mod fleet;
mod health;
mod hostile;
mod inline;
mod inputs;
mod jump;
mod lifecycle;
mod local_user;
mod lock;
mod manual;
mod mirror;
mod output;
mod pace;
mod push;
mod repair;
mod rerun;
mod rollout;
mod security;
mod ssh;
mod ssh_config;
mod ssh_options;
mod support;
mod upgrade;
mod verbose;
