//! The README and docs/ are read in a clone of this repository alone: every
//! relative link must reach a file inside it (a link to `../shared/...`
//! works in the developers' checkout and is dead everywhere else).

use std::fs;
use std::path::{Path, PathBuf};

fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/ is readable")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The targets of `[text](target)` links, without `#fragment`.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split('#').next().unwrap_or_default();
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            targets.push(target.to_string());
        }
        rest = &rest[end..];
    }
    targets
}

#[test]
fn every_relative_link_in_the_docs_stays_inside_the_repository() {
    let root = fs::canonicalize(env!("CARGO_MANIFEST_DIR")).unwrap();
    let mut bad = Vec::new();
    for file in markdown_files(&root) {
        let text = fs::read_to_string(&file).unwrap();
        for target in link_targets(&text) {
            let joined = file.parent().unwrap().join(&target);
            match fs::canonicalize(&joined) {
                Ok(found) if found.starts_with(&root) => {}
                Ok(found) => bad.push(format!(
                    "{}: {target} leaves the repository ({})",
                    file.display(),
                    found.display()
                )),
                Err(_) => bad.push(format!("{}: {target} does not exist", file.display())),
            }
        }
    }
    assert!(bad.is_empty(), "dead or outside links:\n{}", bad.join("\n"));
}

#[test]
fn link_targets_are_found() {
    assert_eq!(
        link_targets("see [a](docs/a.md#x), [b](https://e.org) and [c](../c.md)"),
        ["docs/a.md", "../c.md"]
    );
}
