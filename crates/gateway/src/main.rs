//! `towerguard`: the gateway binary.
//!
//! ```text
//! towerguard [--config towerguard.toml] [--port 8080] [--bind 127.0.0.1] [--log-json]
//! ```
//!
//! Without `--config` it reads the file `TOWERGUARD_CONFIG` names, else the providers whose keys
//! the environment holds, else the embedded default (simulated providers, no keys needed).
//! The port is `--port`, else `TOWERGUARD_PORT`, else the file's `server.port`, else 8080.
//! Built with the `otlp` feature, it exports its spans over OTLP/HTTP to the file's
//! `server.otlp_endpoint` when that is set.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use towerguard::config::ProcessEnv;
use towerguard_gateway::config::{gateway_from_config, load_config};
use towerguard_gateway::{Gateway, shutdown_signal};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// An OpenAI- and Anthropic-compatible gateway over towerguard's pipeline.
#[derive(Debug, Parser)]
#[command(name = "towerguard", version, about)]
struct Args {
    /// The configuration file (default: the file TOWERGUARD_CONFIG names, else the
    /// environment's provider keys, else the embedded default with simulated providers).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The port (overrides TOWERGUARD_PORT and server.port; 0 picks a free one).
    #[arg(long)]
    port: Option<u16>,
    /// The address to bind (overrides server.bind).
    #[arg(long)]
    bind: Option<std::net::IpAddr>,
    /// How long in-flight requests and streams may take to finish on shutdown ("30s").
    #[arg(long, value_parser = humantime_duration, default_value = "30s")]
    shutdown_deadline: Duration,
    /// Logs as JSON lines (one object per event, with the request span's fields).
    #[arg(long)]
    log_json: bool,
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 30s"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("`{s}` is not a duration like 30s, 500ms or 2m")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

/// What has to be flushed before exiting: the OTLP exporter's last batch.
#[derive(Default)]
struct Telemetry {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("towerguard: flushing the spans to the OTLP endpoint failed: {e}");
        }
    }
}

/// Logs (JSON lines or text) to stderr, filtered by `RUST_LOG` (default `info`), and with
/// the `otlp` feature the spans exported to `otlp_endpoint` when it is set.
fn init_logs(json: bool, otlp_endpoint: Option<&str>) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed()
    } else {
        fmt.boxed()
    };
    let registry = tracing_subscriber::registry().with(filter).with(fmt);
    #[cfg(feature = "otlp")]
    {
        let provider = otlp_endpoint
            .map(towerguard_gateway::telemetry::otlp_tracer_provider)
            .transpose()
            .map_err(|e| format!("server.otlp_endpoint: {e}"))?;
        let otel = provider
            .as_ref()
            .map(towerguard_gateway::telemetry::otel_layer);
        registry.with(otel).init();
        Ok(Telemetry { provider })
    }
    #[cfg(not(feature = "otlp"))]
    {
        if otlp_endpoint.is_some() {
            eprintln!(
                "towerguard: server.otlp_endpoint is set, but this build has no `otlp` feature: no spans are exported"
            );
        }
        registry.init();
        Ok(Telemetry::default())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let (config, source) = match load_config(args.config.as_deref(), ProcessEnv) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("towerguard: the configuration has mistakes:\n{errors}");
            return ExitCode::from(2);
        }
    };
    let telemetry = match init_logs(args.log_json, config.server.otlp_endpoint.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("towerguard: {e}");
            return ExitCode::from(2);
        }
    };
    let code = run(args, config, source).await;
    // the exporter's flush blocks: off the runtime's workers
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    code
}

async fn run(
    args: Args,
    mut config: towerguard::config::Config,
    source: towerguard_gateway::config::ConfigSource,
) -> ExitCode {
    // --port > TOWERGUARD_PORT > server.port (a file's env override already applied it)
    if let Some(port) = std::env::var("TOWERGUARD_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
    {
        config.server.port = port;
    }
    if let Some(port) = args.port {
        config.server.port = port;
    }
    if let Some(bind) = args.bind {
        config.server.bind = bind.to_string();
    }
    let gateway = match gateway_from_config(&config) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("towerguard: {e}");
            return ExitCode::from(2);
        }
    };
    let mut settings = gateway.settings().clone();
    settings.shutdown_deadline = args.shutdown_deadline;
    let gateway = Gateway::with_settings(gateway, settings);
    let addr = gateway.settings().addr();
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("towerguard: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let local = listener.local_addr().map_or(addr, |a| a);
    tracing::info!(config = %source, "towerguard listening on http://{local}");
    println!("towerguard listening on http://{local} ({source})");
    match gateway.serve(listener, shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("towerguard: {e}");
            ExitCode::from(1)
        }
    }
}
