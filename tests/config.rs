//! Configuration as the README documents it: every flag is also an environment variable
//! (`WARREN_AMQP_LISTEN`, `WARREN_DATA_DIR`, ...), and the memory high watermark defaults to
//! 0.4 of the machine's RAM (`MemTotal` in /proc/meminfo).
//!
//! These tests start `warren` themselves, with no flags and a cleaned environment, so they
//! skip themselves when `WARREN_TEST_URL` points at an external broker.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every variable the README lists: cleared before each spawn, so that only what a test sets
/// reaches the broker.
const VARS: &[&str] = &[
    "WARREN_AMQP_LISTEN",
    "WARREN_DATA_DIR",
    "WARREN_MEMORY_HIGH_WATERMARK",
    "WARREN_LOG_LEVEL",
    "WARREN_DEFINITIONS",
    "WARREN_HTTP_LISTEN",
    "WARREN_NO_HTTP",
    "WARREN_GUEST_REMOTE",
];

const STARTUP: Duration = Duration::from_secs(30);

/// A `warren` configured by environment variables only, killed on drop.
struct EnvBroker {
    child: Child,
    log_path: PathBuf,
    amqp_port: u16,
}

impl EnvBroker {
    /// Starts `warren <args>` in `cwd` with the `WARREN_*` variables in `env` (and no others);
    /// `env` gets `WARREN_AMQP_LISTEN` for a free port unless it sets it. Waits until that port
    /// accepts connections; retries on another port if it was taken meanwhile.
    async fn start(cwd: &Path, env: &[(&str, String)], args: &[&str]) -> EnvBroker {
        let mut last_log = String::new();
        for attempt in 0..5 {
            let amqp_port = free_port();
            let mut vars: Vec<(String, String)> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            if !env.iter().any(|(k, _)| *k == "WARREN_AMQP_LISTEN") {
                vars.push((
                    "WARREN_AMQP_LISTEN".into(),
                    format!("127.0.0.1:{amqp_port}"),
                ));
            }
            let amqp_port = vars
                .iter()
                .find(|(k, _)| k == "WARREN_AMQP_LISTEN")
                .and_then(|(_, v)| v.rsplit_once(':'))
                .and_then(|(_, p)| p.parse().ok())
                .expect("WARREN_AMQP_LISTEN with a port");
            let log_path = cwd.join(format!("warren-{attempt}.log"));
            let log = std::fs::File::create(&log_path).expect("create log");
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_warren"));
            for var in VARS {
                cmd.env_remove(var);
            }
            let mut child = cmd
                .args(args)
                .envs(vars)
                .env("NO_COLOR", "1")
                .current_dir(cwd)
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().expect("clone log")))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("spawn warren");
            let deadline = Instant::now() + STARTUP;
            loop {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    assert!(
                        last_log.contains("Address already in use"),
                        "warren exited ({status}) before listening; log:\n{last_log}"
                    );
                    break;
                }
                if tokio::net::TcpStream::connect(("127.0.0.1", amqp_port))
                    .await
                    .is_ok()
                {
                    return EnvBroker {
                        child,
                        log_path,
                        amqp_port,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!(
                        "warren did not listen on 127.0.0.1:{amqp_port} within {STARTUP:?}; log:\n{}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            eprintln!("port taken, attempt {attempt}");
        }
        panic!("warren failed to start 5 times; last log:\n{last_log}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The `limit_bytes` of the "memory high watermark" line logged at start-up.
    fn memory_limit(&self) -> u64 {
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.contains("memory high watermark"))
            .unwrap_or_else(|| panic!("no memory high watermark line in the log:\n{log}"));
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("limit_bytes="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no limit_bytes=N in {line:?}"))
    }
}

impl Drop for EnvBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- warren log ----\n{}\n----", self.log());
        }
    }
}

/// The memory Warren may use: `MemTotal` from /proc/meminfo, or the cgroup's
/// memory limit when lower (cgroup v2 `memory.max`, v1
/// `memory.limit_in_bytes`, of this process's cgroup), in bytes.
fn mem_total() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").expect("read /proc/meminfo");
    let kb: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("MemTotal in /proc/meminfo");
    let host = kb * 1024;
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut limits = Vec::new();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        let file = match controllers {
            "" => format!("/sys/fs/cgroup{path}/memory.max"),
            c if c.split(',').any(|c| c == "memory") => {
                format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
            }
            _ => continue,
        };
        if let Some(limit) = std::fs::read_to_string(file)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            limits.push(limit);
        }
    }
    limits.into_iter().fold(host, u64::min)
}

/// Asserts `limit` is `fraction` of RAM, allowing for rounding.
fn assert_fraction_of_ram(limit: u64, fraction: f64) {
    let want = mem_total() as f64 * fraction;
    assert!(
        (limit as f64 - want).abs() <= 1024.0,
        "memory limit {limit} bytes, expected {fraction} of MemTotal = {want:.0}"
    );
}

/// Status line and body of `GET path` with basic auth, over plain HTTP/1.1.
async fn http_get(port: u16, path: &str, user: &str, password: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("connect to the HTTP API on {port}: {e}"));
    let auth = base64(format!("{user}:{password}").as_bytes());
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {auth}\r\n\
         Connection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("send request");
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut resp))
        .await
        .expect("HTTP answer within 10 s")
        .expect("read answer");
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let status = resp.lines().next().unwrap_or("").to_string();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

#[tokio::test]
async fn every_setting_can_come_from_the_environment() {
    if skip_if_external("every_setting_can_come_from_the_environment") {
        return;
    }
    within(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let cwd = dir.path().join("cwd");
        let store = dir.path().join("store");
        std::fs::create_dir_all(&cwd).unwrap();
        let defs = dir.path().join("defs.json");
        std::fs::write(
            &defs,
            r#"{
              "vhosts": [{"name": "env-vhost"}],
              "users": [{"name": "env-user", "password": "env-pass", "tags": ["administrator"]}],
              "permissions": [{"user": "env-user", "vhost": "env-vhost",
                               "configure": ".*", "write": ".*", "read": ".*"}],
              "queues": [{"name": "from-env-definitions", "vhost": "env-vhost", "durable": true}]
            }"#,
        )
        .unwrap();
        let http_port = free_port();
        let broker = EnvBroker::start(
            &cwd,
            &[
                ("WARREN_DATA_DIR", store.display().to_string()),
                ("WARREN_HTTP_LISTEN", format!("127.0.0.1:{http_port}")),
                ("WARREN_MEMORY_HIGH_WATERMARK", "123456789".into()),
                ("WARREN_LOG_LEVEL", "debug".into()),
                ("WARREN_DEFINITIONS", defs.display().to_string()),
            ],
            &[],
        )
        .await;
        // WARREN_AMQP_LISTEN and WARREN_DEFINITIONS: the file's user, vhost and queue are
        // there on the port we gave.
        let uri = format!(
            "amqp://env-user:env-pass@127.0.0.1:{}/env-vhost",
            broker.amqp_port
        );
        let conn = lapin_connect(&uri).await;
        let ch = conn.create_channel().await.expect("channel");
        ch.queue_declare(
            "from-env-definitions".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("the queue from WARREN_DEFINITIONS");
        // WARREN_LOG_LEVEL=debug: the channel we just opened is logged at debug level.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !broker.log().contains("DEBUG") {
            assert!(
                Instant::now() < deadline,
                "no DEBUG line with WARREN_LOG_LEVEL=debug; log:\n{}",
                broker.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        conn.close(200, "OK".into()).await.expect("close");
        // WARREN_HTTP_LISTEN: the HTTP API answers there.
        let (status, body) = http_get(http_port, "/api/whoami", "env-user", "env-pass").await;
        assert!(status.contains(" 200 "), "{status}\n{body}");
        assert!(body.contains("env-user"), "{body}");
        // WARREN_MEMORY_HIGH_WATERMARK: a number above 1 is bytes.
        assert_eq!(broker.memory_limit(), 123_456_789);
        // WARREN_DATA_DIR: the store is there, and not in ./warren-data (the default).
        let in_store = std::fs::read_dir(&store)
            .map(|d| d.count())
            .unwrap_or_default();
        assert!(
            in_store > 0,
            "nothing in WARREN_DATA_DIR {}",
            store.display()
        );
        assert!(
            !cwd.join("warren-data").exists(),
            "the store went to the default ./warren-data"
        );
    })
    .await
}

#[tokio::test]
async fn no_http_and_log_level_from_the_environment() {
    if skip_if_external("no_http_and_log_level_from_the_environment") {
        return;
    }
    within(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let http_port = free_port();
        let broker = EnvBroker::start(
            dir.path(),
            &[
                (
                    "WARREN_DATA_DIR",
                    dir.path().join("data").display().to_string(),
                ),
                ("WARREN_HTTP_LISTEN", format!("127.0.0.1:{http_port}")),
                // Boolean variables take 1/0, yes/no, on/off as well as true/false.
                ("WARREN_NO_HTTP", "1".into()),
                ("WARREN_LOG_LEVEL", "warn".into()),
            ],
            &[],
        )
        .await;
        assert_broker_serves(&format!(
            "amqp://guest:guest@127.0.0.1:{}/%2f",
            broker.amqp_port
        ))
        .await;
        assert!(
            !port_open(http_port).await,
            "HTTP API listening on {http_port} despite WARREN_NO_HTTP=1"
        );
        let log = broker.log();
        assert!(
            !log.contains("INFO"),
            "INFO lines with WARREN_LOG_LEVEL=warn:\n{log}"
        );
    })
    .await
}

#[tokio::test]
async fn default_memory_watermark_is_four_tenths_of_ram() {
    if skip_if_external("default_memory_watermark_is_four_tenths_of_ram") {
        return;
    }
    within(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data").display().to_string();
        let broker = EnvBroker::start(
            dir.path(),
            &[("WARREN_DATA_DIR", data.clone())],
            &["--no-http"],
        )
        .await;
        assert_fraction_of_ram(broker.memory_limit(), 0.4);
        drop(broker);
        // A fraction from the environment, and 0 (off).
        let broker = EnvBroker::start(
            dir.path(),
            &[
                ("WARREN_DATA_DIR", data.clone()),
                ("WARREN_MEMORY_HIGH_WATERMARK", "0.25".into()),
            ],
            &["--no-http"],
        )
        .await;
        assert_fraction_of_ram(broker.memory_limit(), 0.25);
        drop(broker);
        let broker = EnvBroker::start(
            dir.path(),
            &[("WARREN_DATA_DIR", data)],
            &["--no-http", "--memory-high-watermark", "0"],
        )
        .await;
        assert_eq!(broker.memory_limit(), 0);
        drop(broker);
        // A size with a unit.
        let dir2 = tempfile::tempdir().expect("temp dir");
        let broker = EnvBroker::start(
            dir2.path(),
            &[
                (
                    "WARREN_DATA_DIR",
                    dir2.path().join("data").display().to_string(),
                ),
                ("WARREN_MEMORY_HIGH_WATERMARK", "64MiB".into()),
            ],
            &["--no-http"],
        )
        .await;
        assert_eq!(broker.memory_limit(), 64 << 20);
    })
    .await
}
