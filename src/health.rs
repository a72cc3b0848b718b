//! What makes an install or upgrade stick (docs/rollout.md): the health
//! check the client runs after the switch, and the controller's
//! confirmation that it can still log in. The package's `swpush.yaml` says
//! how it checks itself; the inventory may set or override that per host
//! or group, and sets how long a host waits for the confirmation. Both end
//! up, resolved per host, in the signed order (src/order.rs), so a client
//! runs exactly the check that was signed. This module holds the settings,
//! their rules (shared by the manifest and the inventory readers) and how
//! one host's are resolved; the client side is `src/step/health.sh`.

/// Seconds between two tries of a health check, unless set.
pub const DEFAULT_INTERVAL: u64 = 2;
/// Seconds a health check may take to pass, from its first try, unless set.
pub const DEFAULT_TIMEOUT: u64 = 30;
/// Seconds a host waits for the controller's confirmation, unless set.
pub const DEFAULT_CONFIRM_TIMEOUT: u64 = 30;

/// Accepted `health_interval` and `health_timeout`, in seconds.
pub const INTERVAL_RANGE: std::ops::RangeInclusive<u64> = 1..=3600;
pub const TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 1..=3600;
/// Accepted `confirm_timeout`: 0 turns the confirmation off.
pub const CONFIRM_RANGE: std::ops::RangeInclusive<u64> = 0..=3600;

/// Longest health check command: it travels as one line of the order.
pub const MAX_COMMAND_BYTES: usize = 1024;

/// A health check as a package or an inventory states it, each part unset
/// until one of them sets it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HealthSpec {
    /// The command (`/bin/sh -c`, in the release directory); `Some("")`
    /// (an inventory's `health_check: ""`) turns a package's check off.
    pub check: Option<String>,
    pub interval: Option<u64>,
    pub timeout: Option<u64>,
}

impl HealthSpec {
    /// Whether nothing is set (a host's `swpush hosts` line leaves it out).
    pub fn is_unset(&self) -> bool {
        *self == HealthSpec::default()
    }

    /// The package's spec with what the inventory sets over it.
    pub fn overridden_by(&self, inventory: &HealthSpec) -> HealthSpec {
        HealthSpec {
            check: inventory.check.clone().or_else(|| self.check.clone()),
            interval: inventory.interval.or(self.interval),
            timeout: inventory.timeout.or(self.timeout),
        }
    }

    /// The check to run, with its defaults; `None` when there is none.
    pub fn resolve(&self) -> Option<HealthCheck> {
        let command = self.check.clone().filter(|c| !c.is_empty())?;
        Some(HealthCheck {
            command,
            interval: self.interval.unwrap_or(DEFAULT_INTERVAL),
            timeout: self.timeout.unwrap_or(DEFAULT_TIMEOUT),
        })
    }
}

/// One host's health check, as its order carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub command: String,
    pub interval: u64,
    pub timeout: u64,
}

/// Why a health check command cannot be used, for the reader to locate.
pub fn check_command(command: &str) -> Result<(), String> {
    if command.len() > MAX_COMMAND_BYTES {
        return Err(format!(
            "is longer than {MAX_COMMAND_BYTES} bytes ({})",
            command.len()
        ));
    }
    if command.chars().any(|c| c.is_control()) {
        return Err("must be one line, without control characters".into());
    }
    if command.trim() == "-" {
        // `-` is "none" in the order's text form.
        return Err("`-` is not a command".into());
    }
    Ok(())
}

/// Why `seconds` is not a valid value of `key`, if it is not.
pub fn check_seconds(key: &str, seconds: u64) -> Result<(), String> {
    let range = match key {
        "health_interval" => INTERVAL_RANGE,
        "health_timeout" => TIMEOUT_RANGE,
        _ => CONFIRM_RANGE,
    };
    if range.contains(&seconds) {
        Ok(())
    } else {
        Err(format!(
            "`{key}` must be from {} to {} seconds, got {seconds}",
            range.start(),
            range.end()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inventory_overrides_the_package_part_by_part() {
        let package = HealthSpec {
            check: Some("curl -fsS localhost/health".into()),
            interval: Some(5),
            timeout: None,
        };
        let none = HealthSpec::default();
        assert_eq!(
            package.overridden_by(&none).resolve(),
            Some(HealthCheck {
                command: "curl -fsS localhost/health".into(),
                interval: 5,
                timeout: DEFAULT_TIMEOUT,
            })
        );
        let longer = HealthSpec {
            timeout: Some(120),
            ..HealthSpec::default()
        };
        assert_eq!(
            package.overridden_by(&longer).resolve().unwrap().timeout,
            120
        );
        let off = HealthSpec {
            check: Some(String::new()),
            ..HealthSpec::default()
        };
        assert_eq!(package.overridden_by(&off).resolve(), None);
        assert_eq!(none.resolve(), None);
    }

    #[test]
    fn a_command_is_one_line_and_values_are_in_range() {
        assert!(check_command("test -f running && ./bin/check --quick").is_ok());
        assert!(check_command("true\nrm -rf /").is_err());
        assert!(check_command("-").is_err());
        assert!(check_command(&"x".repeat(MAX_COMMAND_BYTES + 1)).is_err());
        assert!(check_seconds("health_interval", 0).is_err());
        assert!(check_seconds("health_timeout", 3601).is_err());
        assert!(check_seconds("confirm_timeout", 0).is_ok());
        assert_eq!(
            check_seconds("health_interval", 0).unwrap_err(),
            "`health_interval` must be from 1 to 3600 seconds, got 0"
        );
    }
}
