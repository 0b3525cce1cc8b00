//! `tcp`: is a daemon listening? Connects to `address` (`host:port`), optionally sends
//! `send` (a line, `\n` appended) and reads one reply line, all within `timeout-ms`
//! (default 2000). The host lets this plugin reach only the configured address.

wit_bindgen::generate!({
    world: "probe-plugin",
    path: "../../wit",
});

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use exports::mtest::plugin::identity::Guest as Identity;
use exports::mtest::plugin::probe::{FailureContext, Guest as Probe};
use mtest::plugin::types::{PluginInfo, PluginKind};

struct Tcp;

impl Identity for Tcp {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "tcp".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Probe,
            description: "connects to a TCP address, optionally sends a line, reports the reply"
                .into(),
        }
    }
}

fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Option<&'a str> {
    settings
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

impl Probe for Tcp {
    fn check(settings: Vec<(String, String)>, _context: FailureContext) -> Result<String, String> {
        let address = setting(&settings, "address")
            .ok_or_else(|| "missing setting `address` (host:port)".to_string())?;
        let timeout_ms: u64 = match setting(&settings, "timeout-ms") {
            Some(v) => v
                .parse()
                .map_err(|_| format!("timeout-ms: not a number: {v:?}"))?,
            None => 2000,
        };
        let timeout = Duration::from_millis(timeout_ms.max(1));
        let addrs: Vec<_> = address
            .to_socket_addrs()
            .map_err(|e| format!("{address}: cannot resolve: {e}"))?
            .collect();
        let mut last_error = format!("{address}: no addresses");
        for addr in addrs {
            // On wasip2 a refused non-blocking connect can come back Ok: ask the socket.
            let connected =
                TcpStream::connect_timeout(&addr, timeout).and_then(|s| match s.take_error() {
                    Ok(Some(e)) => Err(e),
                    Err(e) => Err(e),
                    Ok(None) => s.peer_addr().map(|_| s),
                });
            match connected {
                Ok(mut stream) => {
                    let mut report = format!("{address} ({addr}): reachable");
                    if let Some(line) = setting(&settings, "send") {
                        let _ = stream.set_read_timeout(Some(timeout));
                        let _ = stream.set_write_timeout(Some(timeout));
                        stream
                            .write_all(format!("{line}\n").as_bytes())
                            .map_err(|e| format!("{report}, but sending failed: {e}"))?;
                        let mut reply = String::new();
                        match BufReader::new(&stream).read_line(&mut reply) {
                            Ok(_) => report.push_str(&format!("\nreply: {}", reply.trim_end())),
                            Err(e) => report.push_str(&format!("\nno reply: {e}")),
                        }
                    }
                    return Ok(report);
                }
                Err(e) => last_error = format!("{address} ({addr}): unreachable: {e}"),
            }
        }
        Ok(last_error)
    }
}

export!(Tcp);
