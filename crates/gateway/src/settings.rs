//! The server's own settings: where it listens, its limits, client keys and the admin token.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// A tenant: a name and the SHA-256 (hex) of its client key.
#[derive(Clone, PartialEq, Eq)]
pub struct Tenant {
    /// The tenant's name: the request's client key, which per-client budgets and limits use.
    pub name: String,
    /// The SHA-256 of its key, 64 lowercase hex characters.
    pub key_sha256: String,
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tenant")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The server's settings. [`Settings::default`] is the embedded default: 127.0.0.1:8080,
/// 1 MiB bodies, 120 s per request, 256 requests at once, 30 s to finish on shutdown, no
/// client keys required, no admin token.
#[derive(Clone)]
pub struct Settings {
    /// The address to bind.
    pub bind: IpAddr,
    /// The port to listen on (0: any free port).
    pub port: u16,
    /// The largest request body, in bytes (413 above).
    pub max_body_bytes: usize,
    /// How long one request may take until its answer starts (504 after).
    pub request_timeout: Duration,
    /// How many model requests are served at once, a stream until its last event; the
    /// others wait (within `request_timeout`).
    pub concurrency_limit: usize,
    /// How long in-flight requests and streams may take to finish after Ctrl-C / SIGTERM.
    pub shutdown_deadline: Duration,
    /// Whether every request needs a known client key (401 otherwise).
    pub keys_required: bool,
    /// The tenants and the hashes of their keys.
    pub tenants: Vec<Tenant>,
    /// The admin token; admin routes exist only when it is set.
    pub admin_token: Option<Secret>,
    /// Where the binary exports its spans over OTLP/HTTP (`server.otlp_endpoint`); used only
    /// when the gateway is built with its `otlp` feature. Default: unset, no export.
    pub otlp_endpoint: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8080,
            max_body_bytes: 1 << 20,
            request_timeout: Duration::from_secs(120),
            concurrency_limit: 256,
            shutdown_deadline: Duration::from_secs(30),
            keys_required: false,
            tenants: Vec::new(),
            admin_token: None,
            otlp_endpoint: None,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("bind", &self.bind)
            .field("port", &self.port)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("concurrency_limit", &self.concurrency_limit)
            .field("shutdown_deadline", &self.shutdown_deadline)
            .field("keys_required", &self.keys_required)
            .field("tenants", &self.tenants)
            .field("admin_token", &self.admin_token)
            .field("otlp_endpoint", &self.otlp_endpoint)
            .finish()
    }
}

impl Settings {
    /// The socket address to listen on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }
}

/// A secret string whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The SHA-256 of `key` as 64 lowercase hex characters: how `[[tenants]]` store keys
/// (`printf %s "$KEY" | sha256sum`).
pub fn key_sha256(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Client keys (hashed) to tenant names.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tenants {
    by_hash: HashMap<String, Arc<str>>,
}

impl Tenants {
    pub(crate) fn new(tenants: &[Tenant]) -> Self {
        Self {
            by_hash: tenants
                .iter()
                .map(|t| {
                    (
                        t.key_sha256.to_ascii_lowercase(),
                        Arc::from(t.name.as_str()),
                    )
                })
                .collect(),
        }
    }

    pub(crate) fn get(&self, hash: &str) -> Option<&Arc<str>> {
        self.by_hash.get(hash)
    }
}
