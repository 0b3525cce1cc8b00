//! What a plugin instance may touch: nothing, unless granted here.
//!
//! The store state carries the WASI context (no files, no env, no network by default),
//! a memory limiter that remembers when it refused, and a bounded tail of the plugin's
//! stderr, so a panic message can be quoted in the error that names the plugin.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// What the host grants one plugin instance, beyond computing.
#[derive(Clone, Debug, Default)]
pub(crate) struct Grants {
    /// Mounted read-write at `/out` (reporters).
    pub(crate) out_dir: Option<PathBuf>,
    /// TCP connections allowed to exactly these addresses (probes).
    pub(crate) tcp_connect: Vec<SocketAddr>,
}

pub(crate) struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) stderr: StderrTail,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl PluginState {
    pub(crate) fn new(grants: &Grants, memory_bytes: usize) -> io::Result<Self> {
        let stderr = StderrTail::default();
        let mut wasi = WasiCtxBuilder::new();
        wasi.stderr(stderr.clone());
        if let Some(dir) = &grants.out_dir {
            wasi.preopened_dir(dir, "/out", FsPerms::ReadWrite)
                .map_err(|e| io::Error::other(format!("{}: {e}", dir.display())))?;
        }
        if !grants.tcp_connect.is_empty() {
            let allowed = Arc::new(grants.tcp_connect.clone());
            wasi.allow_tcp(true).allow_ip_name_lookup(true);
            wasi.socket_addr_check(move |addr, usage| {
                let ok = match usage {
                    SocketAddrUse::TcpConnect => allowed.contains(&addr),
                    // `connect` binds implicitly to the wildcard address first.
                    SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
                    _ => false,
                };
                Box::pin(async move { ok })
            });
        }
        Ok(PluginState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                limit: memory_bytes,
                refused: false,
            },
            stderr,
        })
    }
}

/// Bounds linear memories and tables; remembers a refusal so the error can say why.
pub(crate) struct MemoryLimiter {
    limit: usize,
    pub(crate) refused: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused = true;
            return Err(wasmtime::Error::msg("memory limit reached"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A table element is a pointer; count it against the same budget.
        if desired.saturating_mul(8) > self.limit {
            self.refused = true;
            return Err(wasmtime::Error::msg("table limit reached"));
        }
        Ok(true)
    }
}

/// The last few KiB a plugin wrote to stderr. Never refuses a write: a chatty plugin must
/// not fail because of its logging.
#[derive(Clone, Default)]
pub(crate) struct StderrTail(Arc<Mutex<VecDeque<u8>>>);

const STDERR_TAIL: usize = 8 * 1024;

impl StderrTail {
    /// The last non-empty line, for one-line error messages (e.g. a Rust panic message).
    pub(crate) fn last_line(&self) -> Option<String> {
        let buf = self.0.lock().ok()?;
        let (a, b) = buf.as_slices();
        let text = String::from_utf8_lossy(&[a, b].concat()).into_owned();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        // Rust panics print "panicked at file:line:col:" then the message on the next line.
        match lines.as_slice() {
            [.., at, msg] if at.contains("panicked at") && !msg.starts_with("note:") => {
                Some(format!("{at} {msg}"))
            }
            [.., at, msg, note] if at.contains("panicked at") && note.starts_with("note:") => {
                Some(format!("{at} {msg}"))
            }
            [.., last] => Some(last.to_string()),
            [] => None,
        }
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Ok(mut buf) = self.0.lock() {
            buf.extend(data.iter().copied());
            let excess = buf.len().saturating_sub(STDERR_TAIL);
            buf.drain(..excess);
        }
        Poll::Ready(Ok(data.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
