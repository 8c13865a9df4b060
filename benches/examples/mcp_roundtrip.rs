//! `tools/call` round trips of an MCP client (rmcp) to `mcp-server-everything`'s
//! `echo`, directly and through `policyc mcp-proxy`, over stdio and Streamable
//! HTTP: p50/p99 latency and the proxy's own CPU time per call (utime+stime of
//! its process from /proc/PID/stat, over the timed calls). Not a test; results
//! and the command in docs/performance.md ("MCP proxy").
//!
//! ```sh
//! cargo build --release -p policyc
//! cargo run --release -p toolgate-benches --example mcp_roundtrip -- [CALLS] [MODE...]
//! ```
//!
//! MODE is any of `direct-stdio proxy-stdio direct-http proxy-http proxy-http-stdio`
//! (default: all): `proxy-http` is an HTTP client, the proxy (`--listen`) and an HTTP
//! upstream (`--upstream-url`); `proxy-http-stdio` the same with a stdio upstream.
//! Needs the npm test peers (`bash scripts/setup-test-peers.sh npm`). `FSYNC=always`
//! or `FSYNC=never` passes `--fsync=...` to the proxy (its journal default is `writes`).

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Client = RunningService<RoleClient, ()>;
type Fallible<T> = Result<T, String>;

const WARMUP: usize = 200;
const POLICY: &str =
    "policy bench;\n\ntool echo read { message: string };\n\nagent bench {\n  allow echo;\n}\n";

struct Env {
    root: PathBuf,
    policyc: PathBuf,
    everything: PathBuf,
    work: PathBuf,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let mut modes: Vec<String> = args.collect();
    if modes.is_empty() {
        modes = [
            "direct-stdio",
            "proxy-stdio",
            "direct-http",
            "proxy-http",
            "proxy-http-stdio",
        ]
        .map(String::from)
        .to_vec();
    }
    let env = match setup() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("mcp_roundtrip: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "calls per mode: {calls} (after {WARMUP} warm-up calls); one client, one call at a time"
    );
    println!(
        "{:<14} {:>10} {:>10} {:>10} {:>16}",
        "mode", "p50 µs", "p99 µs", "mean µs", "proxy CPU µs/call"
    );
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        std::process::exit(2);
    };
    for mode in &modes {
        match rt.block_on(run_mode(&env, mode, calls)) {
            Ok(line) => println!("{line}"),
            Err(e) => println!("{mode:<14} failed: {e}"),
        }
    }
}

fn setup() -> Fallible<Env> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(root.join("scripts/setup-test-peers.sh"))
        .arg("npm")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run scripts/setup-test-peers.sh: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let npm = stdout
        .lines()
        .find_map(|l| l.strip_prefix("npm: "))
        .ok_or("scripts/setup-test-peers.sh npm printed no `npm:` line")?;
    let policyc = std::env::var_os("POLICYC")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/policyc"));
    if !policyc.is_file() {
        return Err(format!(
            "no {} (cargo build --release -p policyc)",
            policyc.display()
        ));
    }
    let work = std::env::temp_dir().join(format!("mcp_roundtrip.{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    std::fs::write(work.join("bench.policy"), POLICY).map_err(|e| e.to_string())?;
    Ok(Env {
        everything: Path::new(npm).join(".bin/mcp-server-everything"),
        root,
        policyc,
        work,
    })
}

/// `policyc mcp-proxy` arguments before the upstream (a fresh data dir per mode).
fn proxy_args(env: &Env, mode: &str) -> Vec<String> {
    let data = env.work.join(format!("data-{mode}"));
    let policy = env.work.join("bench.policy");
    vec![
        "mcp-proxy".into(),
        "--policy".into(),
        policy.display().to_string(),
        "--agent".into(),
        "bench".into(),
        "--tenant".into(),
        "t1".into(),
        "--env".into(),
        "dev".into(),
        "--data".into(),
        data.display().to_string(),
    ]
    .into_iter()
    .chain(std::env::var("FSYNC").ok().map(|f| format!("--fsync={f}")))
    .collect()
}

async fn run_mode(env: &Env, mode: &str, calls: usize) -> Fallible<String> {
    let _ = &env.root;
    let (client, proxy_pid, _children) = match mode {
        "direct-stdio" => (
            stdio_client(Command::new(&env.everything).into()).await?,
            None,
            Vec::new(),
        ),
        "proxy-stdio" => {
            let mut cmd = tokio::process::Command::new(&env.policyc);
            cmd.args(proxy_args(env, mode))
                .arg("--")
                .arg(&env.everything);
            let (transport, _) = TokioChildProcess::builder(cmd)
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| e.to_string())?;
            let pid = transport.id();
            let client = ().serve(transport).await.map_err(|e| e.to_string())?;
            (client, pid, Vec::new())
        }
        "direct-http" => {
            let (port, server) = everything_http(env)?;
            (http_client(port, None).await?, None, vec![server])
        }
        "proxy-http" | "proxy-http-stdio" => {
            // proxy-http: HTTP client → proxy → HTTP server (compare with direct-http);
            // proxy-http-stdio: HTTP client → proxy → stdio server.
            let keys = env.work.join(format!("keys-{mode}.toml"));
            let key = service_key(env, &keys)?;
            let port = free_port()?;
            let mut cmd = Command::new(&env.policyc);
            cmd.args(proxy_args(env, mode))
                .arg("--keys")
                .arg(&keys)
                .args(["--listen", &format!("127.0.0.1:{port}")]);
            let mut guards = Vec::new();
            if mode == "proxy-http" {
                let (up, server) = everything_http(env)?;
                cmd.args(["--upstream-url", &format!("http://127.0.0.1:{up}/mcp")]);
                guards.push(server);
            } else {
                cmd.arg("--").arg(&env.everything);
            }
            let proxy = cmd
                .stdin(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?;
            let pid = proxy.id();
            guards.insert(0, Guard(proxy));
            wait_port(port)?;
            (http_client(port, Some(key)).await?, Some(pid), guards)
        }
        other => return Err(format!("unknown mode `{other}`")),
    };
    let result = measure(&client, proxy_pid, calls).await;
    let _ = client.cancel().await;
    let (lat, cpu) = result?;
    let cpu = cpu.map_or_else(|| "-".to_string(), |c| format!("{c:.1}"));
    Ok(format!(
        "{mode:<14} {:>10.1} {:>10.1} {:>10.1} {cpu:>16}",
        lat.0, lat.1, lat.2
    ))
}

/// Kills the child when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn stdio_client(cmd: tokio::process::Command) -> Fallible<Client> {
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    ().serve(transport).await.map_err(|e| e.to_string())
}

async fn http_client(port: u16, key: Option<String>) -> Fallible<Client> {
    let mut config =
        StreamableHttpClientTransportConfig::with_uri(format!("http://127.0.0.1:{port}/mcp"));
    if let Some(key) = key {
        config = config.auth_header(key);
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    ().serve(transport).await.map_err(|e| e.to_string())
}

/// A service key for `--listen` (`policyc keys add`): its secret.
fn service_key(env: &Env, keys: &Path) -> Fallible<String> {
    let out = Command::new(&env.policyc)
        .args(["keys", "add", "bench", "--role", "service", "--keys"])
        .arg(keys)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().last() {
        Some(k) if out.status.success() => Ok(k.trim().to_string()),
        _ => Err(format!(
            "policyc keys add: {}",
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// `mcp-server-everything streamableHttp` on a free port.
fn everything_http(env: &Env) -> Fallible<(u16, Guard)> {
    let port = free_port()?;
    let child = Command::new(&env.everything)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let guard = Guard(child);
    wait_port(port)?;
    Ok((port, guard))
}

fn free_port() -> Fallible<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn wait_port(port: u16) -> Fallible<()> {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listens on 127.0.0.1:{port} after 20 s"))
}

/// ((p50, p99, mean) in µs, proxy CPU µs per call).
async fn measure(
    client: &Client,
    pid: Option<u32>,
    calls: usize,
) -> Fallible<((f64, f64, f64), Option<f64>)> {
    let mut args = serde_json::Map::new();
    args.insert("message".into(), "hello".into());
    let params = CallToolRequestParams::new("echo").with_arguments(args);
    for _ in 0..WARMUP {
        call(client, &params).await?;
    }
    let cpu0 = pid.map(cpu_ticks).transpose()?;
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        call(client, &params).await?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let cpu = match (pid, cpu0) {
        (Some(p), Some(c0)) => {
            Some((cpu_ticks(p)? - c0) as f64 * 1e6 / clock_ticks()? / calls as f64)
        }
        _ => None,
    };
    times.sort_by(f64::total_cmp);
    let at = |q: f64| {
        times
            .get(((times.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    Ok(((at(0.50), at(0.99), mean), cpu))
}

async fn call(client: &Client, params: &CallToolRequestParams) -> Fallible<()> {
    let r = client
        .call_tool(params.clone())
        .await
        .map_err(|e| e.to_string())?;
    if r.is_error == Some(true) {
        return Err(format!("the call failed: {:?}", r.content));
    }
    Ok(())
}

/// utime + stime of a process (all its threads), in clock ticks.
fn cpu_ticks(pid: u32) -> Fallible<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or("bad /proc stat")
    };
    Ok(field(14)? + field(15)?)
}

fn clock_ticks() -> Fallible<f64> {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .map_err(|e| e.to_string())?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("getconf CLK_TCK: {e}"))
}
