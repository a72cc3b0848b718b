//! The JSON report of a run (SPEC §7), read as a user's script would read
//! it: [`Report::parse`] gives each host's entry as a [`HostEntry`] with
//! typed fields (`report.host("web1").status`), and keeps the whole JSON
//! for what a test inspects as JSON (`report["summary"]`,
//! `report.host("web1")["packages"]`). Written independently of the
//! library's report types, so that a wrong field name there fails here.

use std::fmt;
use std::ops::Index;

use serde_json::Value;

/// A run's JSON report.
#[derive(Debug, Clone)]
pub struct Report {
    pub hosts: Vec<HostEntry>,
    json: Value,
}

/// One host's entry in [`Report::hosts`].
#[derive(Debug, Clone)]
pub struct HostEntry {
    /// The inventory name, and the address connected to.
    pub host: String,
    pub address: String,
    /// One word of SPEC §7: `installed`, `busy`, `unreachable`, ...
    pub status: String,
    /// Before and after the run: `None` for JSON `null` (none installed),
    /// `Some("unknown")` when the controller never learned it (SPEC §7);
    /// see [`HostEntry::versions_known`].
    pub previous_version: Option<String>,
    pub version: Option<String>,
    /// How long the host took, and how many busy checks it made.
    pub seconds: f64,
    pub attempts: u64,
    /// Package bytes uploaded.
    pub bytes_sent: u64,
    /// Why, in the client's or the controller's words.
    pub message: String,
    /// The jump chain, when the host was reached through one.
    pub via: Option<String>,
    /// Time per phase, `("connecting", 0.1)`, in the order gone through.
    pub phases: Vec<(String, f64)>,
    /// The SSH layer's view of a failure, when there was one.
    pub detail: Option<String>,
    json: Value,
}

impl Report {
    /// The report in `stdout`; panics, showing what came instead, if that is
    /// no report.
    pub fn parse(stdout: &[u8]) -> Report {
        Report::try_parse(stdout).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Report::parse`], saying what is wrong instead of panicking.
    pub fn try_parse(stdout: &[u8]) -> Result<Report, String> {
        let json: Value = serde_json::from_slice(stdout)
            .map_err(|e| format!("no JSON report ({e}): {}", String::from_utf8_lossy(stdout)))?;
        Ok(Report::from_json(json))
    }

    /// A report already read as JSON (a run record, a `--report FILE`).
    pub fn from_json(json: Value) -> Report {
        let hosts = json["hosts"]
            .as_array()
            .unwrap_or_else(|| panic!("a report without \"hosts\": {json:#}"))
            .iter()
            .map(HostEntry::from_json)
            .collect();
        Report { hosts, json }
    }

    /// The entry for `host`; panics, showing the report, if it has none.
    pub fn host(&self, host: &str) -> &HostEntry {
        self.hosts
            .iter()
            .find(|entry| entry.host == host)
            .unwrap_or_else(|| panic!("{host} not in {self:#}"))
    }

    /// (status, message) of `host`.
    pub fn status_of(&self, host: &str) -> (String, String) {
        let entry = self.host(host);
        (entry.status.clone(), entry.message.clone())
    }
}

impl HostEntry {
    fn from_json(json: &Value) -> HostEntry {
        let text = |field: &str| -> String {
            json[field]
                .as_str()
                .unwrap_or_else(|| panic!("host entry without a string {field:?}: {json:#}"))
                .to_owned()
        };
        let number = |field: &str| -> u64 {
            json[field]
                .as_u64()
                .unwrap_or_else(|| panic!("host entry without a count {field:?}: {json:#}"))
        };
        let version = |field: &str| -> Option<String> {
            match json.get(field) {
                Some(Value::Null) => None,
                Some(Value::String(v)) => Some(v.clone()),
                None => panic!("host entry without {field:?}: {json:#}"),
                Some(other) => panic!("host entry {field:?} is {other}: {json:#}"),
            }
        };
        HostEntry {
            host: text("host"),
            address: text("address"),
            status: text("status"),
            previous_version: version("previous_version"),
            version: version("version"),
            seconds: json["seconds"]
                .as_f64()
                .unwrap_or_else(|| panic!("host entry without \"seconds\": {json:#}")),
            attempts: number("attempts"),
            bytes_sent: number("bytes_sent"),
            message: text("message"),
            via: json.get("via").map(|_| text("via")),
            phases: phases(json),
            detail: json.get("detail").map(|_| text("detail")),
            json: json.clone(),
        }
    }
}

/// A host entry's `phases`: always there, each `{"phase", "seconds"}`.
fn phases(json: &Value) -> Vec<(String, f64)> {
    let bad = || format!("host entry without a list of phases: {json:#}");
    let list = json["phases"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", bad()));
    list.iter()
        .map(
            |time| match (time["phase"].as_str(), time["seconds"].as_f64()) {
                (Some(phase), Some(seconds)) if time.as_object().is_some_and(|o| o.len() == 2) => {
                    (phase.to_owned(), seconds)
                }
                _ => panic!("{}", bad()),
            },
        )
        .collect()
}

impl HostEntry {
    /// Whether the controller learned both versions (neither is `"unknown"`).
    pub fn versions_known(&self) -> bool {
        [&self.previous_version, &self.version]
            .iter()
            .all(|v| v.as_deref() != Some("unknown"))
    }
}

impl Index<&str> for Report {
    type Output = Value;

    fn index(&self, field: &str) -> &Value {
        &self.json[field]
    }
}

impl Index<&str> for HostEntry {
    type Output = Value;

    fn index(&self, field: &str) -> &Value {
        &self.json[field]
    }
}

/// The report as pretty JSON, for assertion messages (`{report:#}`).
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{:#}", self.json)
    }
}

impl fmt::Display for HostEntry {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{:#}", self.json)
    }
}
