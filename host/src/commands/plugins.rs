//! `mtest plugins list` and `mtest plugins check`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::plugin_host::bindings::{WIT_PACKAGE, WIT_VERSION};
use crate::plugin_host::discovery::{self, Found};
use crate::plugin_host::{native, LoadError, PluginHost, Source};
use crate::Exit;

/// One row of the listing; the JSON form is the same fields.
#[derive(Serialize)]
struct Row {
    name: String,
    kind: String,
    version: String,
    wit_version: String,
    source: &'static str,
    path: Option<PathBuf>,
    status: &'static str,
    reason: Option<String>,
    description: String,
}

fn row(found: Found) -> Row {
    match found {
        Found::Subcommand { name, path } => Row {
            name,
            kind: "subcommand".into(),
            version: "-".into(),
            wit_version: "-".into(),
            source: Source::Path(path.clone()).label(),
            path: Some(path),
            status: "ok",
            reason: None,
            description: "external subcommand (mtest <name> runs it)".into(),
        },
        Found::Component {
            hint,
            source,
            loaded,
        } => {
            let (label, path) = (source.label(), source.path().cloned());
            match loaded {
                Ok(plugin) => Row {
                    name: plugin.info.name,
                    kind: plugin.info.kind.to_string(),
                    version: plugin.info.version,
                    wit_version: WIT_VERSION.into(),
                    source: label,
                    path,
                    status: "ok",
                    reason: None,
                    description: plugin.info.description,
                },
                Err(e) => {
                    let (status, reason) = match e {
                        LoadError::Incompatible(r) => ("incompatible", r),
                        LoadError::Broken(r) => ("broken", r),
                    };
                    Row {
                        name: hint,
                        kind: "-".into(),
                        version: "-".into(),
                        wit_version: "-".into(),
                        source: label,
                        path,
                        status,
                        reason: Some(reason),
                        description: String::new(),
                    }
                }
            }
        }
    }
}

/// A trusted native probe of `[tool.mtest.probes]`, loaded in a helper process to check it.
fn native_row(name: &str, lib: PathBuf) -> Row {
    let answer = native::info(&lib, std::time::Duration::from_secs(10));
    Row {
        name: name.to_string(),
        kind: "probe".into(),
        version: "-".into(),
        wit_version: format!("abi {}", native::ABI_VERSION),
        source: "native, trusted",
        path: Some(lib),
        status: if answer.is_ok() { "ok" } else { "broken" },
        reason: answer.err().map(|e| e.to_string()),
        description: "trusted native probe (a shared library, run in a helper process)".into(),
    }
}

pub fn list(
    host: &PluginHost,
    root: &Path,
    config_paths: &[PathBuf],
    native_probes: &[(String, PathBuf)],
    json: bool,
) -> Exit {
    let rows: Vec<Row> = discovery::discover(host, root, config_paths)
        .into_iter()
        .map(row)
        .chain(
            native_probes
                .iter()
                .map(|(name, lib)| native_row(name, lib.clone())),
        )
        .collect();
    if json {
        match serde_json::to_string_pretty(&rows) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: cannot encode the plugin list as JSON: {e}");
                return Exit::Internal;
            }
        }
        return Exit::Ok;
    }
    let header = ["NAME", "KIND", "VERSION", "WIT", "SOURCE", "STATUS"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let status = match &r.reason {
                Some(reason) => format!("{}: {reason}", r.status),
                None => r.status.to_string(),
            };
            let source = match &r.path {
                Some(p) if r.source != "builtin" => {
                    format!("{} ({})", r.source, display_relative(p, root))
                }
                _ => r.source.to_string(),
            };
            [
                r.name.clone(),
                r.kind.clone(),
                r.version.clone(),
                r.wit_version.clone(),
                source,
                status,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: [&str; 6]| {
        let mut out = String::new();
        for (i, c) in cols.iter().enumerate() {
            if i + 1 == cols.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header);
    for row in &cells {
        line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]);
    }
    Exit::Ok
}

fn display_relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

pub fn check(host: &PluginHost, path: &Path) -> Exit {
    match host.load_file(path, Source::CommandLine(path.to_path_buf())) {
        Ok(plugin) => {
            println!(
                "{}: ok: `{}` {} is a {} plugin (world {WIT_PACKAGE}/{}@{WIT_VERSION}); this mtest accepts it",
                path.display(),
                plugin.info.name,
                plugin.info.version,
                plugin.info.kind,
                plugin.info.kind.world(),
            );
            if !plugin.info.description.is_empty() {
                println!("  {}", plugin.info.description);
            }
            Exit::Ok
        }
        Err(e) => {
            println!("{}: {e}", path.display());
            Exit::Failures
        }
    }
}
