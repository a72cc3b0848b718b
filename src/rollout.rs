//! How a run rolls out over its hosts: in batches (`--serial`), the first
//! of which is the canary, and up to how many hosts may fail before it
//! stops (`--max-fail`). The fan-out ([`crate::fleet`]) runs the plan.

use std::fmt;
use std::str::FromStr;

/// A number of hosts, or a share of the hosts selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Hosts(u32),
    Percent(u32),
}

impl Count {
    /// `N` or `N%` (1..=100) of `total` hosts.
    fn of(self, total: usize) -> usize {
        match self {
            Count::Hosts(n) => n as usize,
            Count::Percent(p) => total * p as usize / 100,
        }
    }
}

impl FromStr for Count {
    type Err = String;

    fn from_str(text: &str) -> Result<Count, String> {
        let (digits, percent) = match text.strip_suffix('%') {
            Some(digits) => (digits, true),
            None => (text, false),
        };
        let n: u32 = digits
            .parse()
            .ok()
            .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| format!("`{text}` is not a number of hosts (N) or a share (N%)"))?;
        match percent {
            true if (1..=100).contains(&n) => Ok(Count::Percent(n)),
            true => Err(format!("`{text}`: a share is 1% to 100%")),
            false => Ok(Count::Hosts(n)),
        }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Count::Hosts(n) => write!(f, "{n}"),
            Count::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `--serial N | N% | LIST`: batch sizes, as Ansible's `serial` reads
/// them; the last one repeats until every host has had its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serial(Vec<Count>);

impl FromStr for Serial {
    type Err = String;

    fn from_str(text: &str) -> Result<Serial, String> {
        let sizes = text
            .split(',')
            .map(|size| match size.trim().parse()? {
                Count::Hosts(0) => Err("a batch of 0 hosts cannot run".to_owned()),
                size => Ok(size),
            })
            .collect::<Result<Vec<Count>, String>>()?;
        Ok(Serial(sizes))
    }
}

impl Serial {
    /// The batch sizes for `total` hosts, in order; each at least one
    /// host (a share that rounds down to none is one, as in Ansible).
    pub fn batches(&self, total: usize) -> Vec<usize> {
        let mut batches = Vec::new();
        let mut left = total;
        let mut sizes = self.0.iter();
        let mut size = Count::Percent(100);
        while left > 0 {
            size = sizes.next().copied().unwrap_or(size);
            let n = size.of(total).clamp(1, left);
            batches.push(n);
            left -= n;
        }
        batches
    }
}

/// `--max-fail N | N%`: the rollout stops once MORE than this many hosts
/// (counted over the whole run) did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxFail(pub Count);

impl FromStr for MaxFail {
    type Err = String;

    fn from_str(text: &str) -> Result<MaxFail, String> {
        text.parse().map(MaxFail)
    }
}

/// What the fan-out runs: batches, and when to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Host counts, in inventory order; their sum is every host.
    pub batches: Vec<usize>,
    /// Hosts that may not succeed before no new host starts.
    pub may_fail: usize,
    /// The limit as given, for the message.
    pub max_fail: Option<MaxFail>,
}

impl Plan {
    /// One batch of every host and no limit unless given; with batches
    /// and no `--max-fail`, no host may fail: the rollout stops at the
    /// first that does not succeed, in the canary (the first batch) first
    /// of all.
    pub fn new(total: usize, serial: Option<&Serial>, max_fail: Option<MaxFail>) -> Plan {
        let batches = match serial {
            Some(serial) => serial.batches(total),
            None if total > 0 => vec![total],
            None => Vec::new(),
        };
        let may_fail = match (max_fail, serial) {
            (Some(MaxFail(count)), _) => count.of(total),
            (None, Some(_)) => 0,
            (None, None) => usize::MAX,
        };
        Plan {
            batches,
            may_fail,
            max_fail,
        }
    }

    /// Why the rollout stops once `failed` hosts did not succeed, if it does.
    pub fn stop_reason(&self, failed: usize) -> Option<String> {
        if failed <= self.may_fail {
            return None;
        }
        Some(match self.max_fail {
            Some(MaxFail(count)) => format!(
                "the rollout stopped: {failed} hosts did not succeed, more than --max-fail {count}"
            ),
            None => format!(
                "the rollout stopped: {failed} hosts did not succeed (with --serial and no --max-fail, none may)"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_follow_the_serial_list_and_repeat_its_last_size() {
        let cases: &[(&str, usize, &[usize])] = &[
            ("1", 3, &[1, 1, 1]),
            ("2", 5, &[2, 2, 1]),
            ("50%", 10, &[5, 5]),
            ("2,50%,100%", 10, &[2, 5, 3]),
            ("1,10%,100%", 100, &[1, 10, 89]),
            ("10%", 5, &[1, 1, 1, 1, 1]),
            ("100%", 4, &[4]),
            ("5", 2, &[2]),
            ("1,2", 0, &[]),
        ];
        for (serial, total, expected) in cases {
            let serial: Serial = serial.parse().unwrap();
            assert_eq!(serial.batches(*total), *expected, "{serial:?} of {total}");
        }
    }

    #[test]
    fn counts_are_numbers_or_shares() {
        assert_eq!("3".parse(), Ok(Count::Hosts(3)));
        assert_eq!("25%".parse(), Ok(Count::Percent(25)));
        for bad in [
            "",
            "%",
            "x",
            "-1",
            "+1",
            "1.5",
            "0%",
            "101%",
            "1 %",
            "99999999999",
        ] {
            assert!(bad.parse::<Count>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "1,0".parse::<Serial>(),
            Err("a batch of 0 hosts cannot run".to_owned())
        );
        assert_eq!("0".parse::<MaxFail>(), Ok(MaxFail(Count::Hosts(0))));
    }

    #[test]
    fn the_limit_is_exceeded_only_past_it() {
        let plan = Plan::new(10, None, Some(MaxFail(Count::Hosts(1))));
        assert_eq!(plan.stop_reason(1), None);
        assert_eq!(
            plan.stop_reason(2).unwrap(),
            "the rollout stopped: 2 hosts did not succeed, more than --max-fail 1"
        );
        let plan = Plan::new(10, None, Some(MaxFail(Count::Percent(20))));
        assert_eq!((plan.may_fail, plan.stop_reason(2)), (2, None));
        assert!(
            plan.stop_reason(3)
                .unwrap()
                .ends_with("more than --max-fail 20%")
        );
        // No limit, no batches: never stops.
        assert_eq!(Plan::new(10, None, None).stop_reason(10), None);
        // Batches without a limit: the canary must succeed.
        let serial: Serial = "1,100%".parse().unwrap();
        let plan = Plan::new(10, Some(&serial), None);
        assert_eq!(plan.batches, [1, 9]);
        assert!(plan.stop_reason(1).unwrap().contains("none may"));
    }
}
