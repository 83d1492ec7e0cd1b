//! Shared harness for Warren's integration tests.
//!
//! `TestBroker::start()` either points at an external broker (env `WARREN_TEST_URL`, e.g.
//! `amqp://guest:guest@127.0.0.1:5673/%2f` for the reference RabbitMQ) or starts the `warren`
//! binary on a free port with a temporary data directory and kills it on drop.
//!
//! Every test binary compiles this module, and not every binary uses every helper.
#![allow(dead_code)]

pub mod raw;

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

/// Name of the environment variable that selects an external broker.
pub const ENV_URL: &str = "WARREN_TEST_URL";

/// How long a whole test may take before it is failed as a hang.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the harness waits for a spawned broker to accept TCP connections.
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// A broker to test against: external (env) or a child process we own.
pub struct TestBroker {
    child: Option<Child>,
    host: String,
    port: u16,
    user: String,
    password: String,
    vhost_path: String,
    // Holds the data dir and the broker's log; removed on drop (after the child is killed).
    tempdir: Option<tempfile::TempDir>,
    /// The data directory the child runs on (kept across restarts).
    data_path: Option<PathBuf>,
    /// The log file of the current child.
    log_path: Option<PathBuf>,
    /// How many times the child was (re)started.
    launches: u32,
}

impl TestBroker {
    /// True when tests run against an external broker given by `WARREN_TEST_URL`.
    pub fn is_external() -> bool {
        std::env::var(ENV_URL)
            .map(|v| !v.is_empty())
            .unwrap_or(false)
    }

    /// Use the env broker or start our own `warren` process.
    pub async fn start() -> TestBroker {
        match std::env::var(ENV_URL) {
            Ok(url) if !url.is_empty() => Self::external(&url),
            _ => Self::spawn().await,
        }
    }

    fn external(url: &str) -> TestBroker {
        let rest = url
            .strip_prefix("amqp://")
            .unwrap_or_else(|| panic!("{ENV_URL} must start with amqp://, got {url}"));
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/%2f".to_string()),
        };
        // Drop any query: helpers add their own.
        let path = path.split('?').next().unwrap_or("").to_string();
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (&authority[..i], &authority[i + 1..]),
            None => ("guest:guest", authority),
        };
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().expect("port in WARREN_TEST_URL")),
            None => (hostport, 5672),
        };
        TestBroker {
            child: None,
            host: host.to_string(),
            port,
            user: user.to_string(),
            password: password.to_string(),
            vhost_path: path,
            tempdir: None,
            data_path: None,
            log_path: None,
            launches: 0,
        }
    }

    async fn spawn() -> TestBroker {
        Self::spawn_with(&[]).await
    }

    /// Starts our own broker with extra command-line arguments (restarts do
    /// not repeat them).
    pub async fn start_with(args: &[&str]) -> TestBroker {
        Self::spawn_with(args).await
    }

    async fn spawn_with(extra: &[&str]) -> TestBroker {
        let bin = env!("CARGO_BIN_EXE_warren");
        let tempdir = tempfile::Builder::new()
            .prefix("warren-test-")
            .tempdir()
            .expect("create temp dir");
        let mut last_log = String::new();
        for attempt in 0..5 {
            let port = free_port();
            let data_dir = tempdir.path().join(format!("data-{attempt}"));
            std::fs::create_dir_all(&data_dir).expect("create data dir");
            let log_path = tempdir.path().join(format!("broker-{attempt}.log"));
            let log = std::fs::File::create(&log_path).expect("create broker log");
            let log_err = log.try_clone().expect("clone log handle");
            let mut child = Command::new(bin)
                .arg("--amqp-listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--data-dir")
                .arg(&data_dir)
                // Many brokers run at once: any free port for the HTTP API.
                .arg("--http-listen")
                .arg("127.0.0.1:0")
                .args(extra)
                // The log goes to a file: no ANSI colours.
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(log_err))
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
            let deadline = Instant::now() + STARTUP_DEADLINE;
            loop {
                if let Some(status) = child.try_wait().expect("try_wait on broker") {
                    // Exited early: most likely the port was taken in the meantime; retry.
                    last_log = read_log(&log_path);
                    eprintln!(
                        "warren exited early ({status}) on port {port}, attempt {attempt}:\n{last_log}"
                    );
                    break;
                }
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return TestBroker {
                        child: Some(child),
                        host: "127.0.0.1".to_string(),
                        port,
                        user: "guest".to_string(),
                        password: "guest".to_string(),
                        vhost_path: "/%2f".to_string(),
                        tempdir: Some(tempdir),
                        data_path: Some(data_dir),
                        log_path: Some(log_path),
                        launches: 1,
                    };
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "warren did not accept connections on 127.0.0.1:{port} within {:?}; log:\n{}",
                        STARTUP_DEADLINE,
                        read_log(&log_path)
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        panic!("warren failed to start after 5 attempts; last log:\n{last_log}");
    }

    /// `amqp://user:pass@host:port/vhost`
    pub fn uri(&self) -> String {
        format!(
            "amqp://{}:{}@{}:{}{}",
            self.user, self.password, self.host, self.port, self.vhost_path
        )
    }

    /// The URI with a query string appended, e.g. `frame_max=4096`.
    pub fn uri_with_query(&self, query: &str) -> String {
        format!("{}?{}", self.uri(), query)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// The vhost name, percent-decoded (`/%2f` -> `/`).
    pub fn vhost(&self) -> String {
        let enc = self
            .vhost_path
            .strip_prefix('/')
            .unwrap_or(&self.vhost_path);
        if enc.is_empty() {
            return "/".to_string();
        }
        let bytes = enc.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                if let Ok(b) = u8::from_str_radix(hex, 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8(out).expect("vhost is UTF-8")
    }

    /// `host:port` for raw sockets.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The process id of the broker we started (None for an external broker).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The broker's combined stdout/stderr so far (empty for an external broker).
    pub fn log(&self) -> String {
        match &self.tempdir {
            Some(dir) => {
                let mut out = String::new();
                for attempt in 0..5 {
                    let p = dir.path().join(format!("broker-{attempt}.log"));
                    if p.exists() {
                        out = read_log(&p);
                    }
                }
                out
            }
            None => String::new(),
        }
    }

    /// Data directory of the broker we started.
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.data_path.clone()
    }

    /// Kills the broker with SIGKILL (no shutdown of any kind) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port and data directory (after
    /// `kill9`, or after it exited), and waits until it accepts connections.
    pub async fn restart(&mut self) {
        self.kill9();
        let bin = env!("CARGO_BIN_EXE_warren");
        let dir = self
            .tempdir
            .as_ref()
            .expect("restart() needs a broker started by the harness")
            .path()
            .to_path_buf();
        let data_dir = self.data_path.clone().expect("data dir");
        self.launches += 1;
        let log_path = dir.join(format!("restart-{}.log", self.launches));
        let log = std::fs::File::create(&log_path).expect("create broker log");
        let log_err = log.try_clone().expect("clone log handle");
        let mut child = Command::new(bin)
            .arg("--amqp-listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&data_dir)
            // Many brokers run at once: the HTTP API takes any free port.
            .arg("--http-listen")
            .arg("127.0.0.1:0")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        self.log_path = Some(log_path.clone());
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait on broker") {
                panic!(
                    "warren exited on restart ({status}); log:\n{}",
                    read_log(&log_path)
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                self.child = Some(child);
                return;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                panic!("warren did not come back within {STARTUP_DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The log of the current (last started) broker process.
    pub fn current_log(&self) -> String {
        self.log_path.as_deref().map(read_log).unwrap_or_default()
    }

    /// Poll the child until it exits or `within` passes; None if still running.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait on broker") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Send a signal to the broker process we started.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = self
            .pid()
            .expect("signal() needs a broker started by the harness");
        // SAFETY: kill(2) has no memory-safety preconditions; pid is our own child.
        let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                // The test failed: show what the broker said.
                eprintln!(
                    "---- warren log ----\n{}\n---- end of warren log ----",
                    self.log()
                );
            }
        }
    }
}

fn read_log(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("<cannot read {path:?}: {e}>"))
}

/// For tests that need a broker process of their own (restarts, signals, files in its data
/// directory, extra flags): true when `WARREN_TEST_URL` points at an external broker, after
/// saying so on stderr, so the test can return without passing silently:
///
/// ```ignore
/// if skip_if_external("my_test") { return; }
/// ```
pub fn skip_if_external(test: &str) -> bool {
    if TestBroker::is_external() {
        skipped(&format!(
            "{test} needs its own broker process ({ENV_URL} is set)"
        ));
        return true;
    }
    false
}

/// Prints `SKIPPED: <why>` straight to the process's stderr: libtest captures `eprintln!` of
/// passing tests, and a skip must show in the output of a plain `cargo test`.
pub fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// A port that was free a moment ago (bind 127.0.0.1:0, read it, drop the listener).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A name unique across tests, processes and runs: `prefix-<pid>-<nanos>-<n>`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos:x}-{n}", std::process::id())
}

/// Run `f`, failing the test if it takes longer than `TEST_TIMEOUT`.
pub async fn within<F: Future>(f: F) -> F::Output {
    within_for(TEST_TIMEOUT, f).await
}

/// Run `f`, failing the test if it takes longer than `limit`.
pub async fn within_for<F: Future>(limit: Duration, f: F) -> F::Output {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("test timed out after {limit:?} (a hang is a failure)"),
    }
}

/// Connect with lapin, default properties.
pub async fn lapin_connect(uri: &str) -> Connection {
    Connection::connect(uri, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("lapin connect to {uri}: {e}"))
}

/// Code and text of a lapin AMQP error (channel.close / connection.close from the server).
pub fn amqp_error(err: &lapin::Error) -> (u16, String) {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => (e.get_id(), e.get_message().to_string()),
        other => panic!("expected an AMQP protocol error, got {other:?}"),
    }
}

/// A fresh connection can declare a queue, publish to it and get the message back.
pub async fn assert_broker_serves(uri: &str) {
    let conn = lapin_connect(uri).await;
    let ch = conn.create_channel().await.expect("channel");
    let q = unique("health");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare");
    ch.basic_publish(
        "".into(),
        q.as_str().into(),
        BasicPublishOptions::default(),
        b"ping",
        BasicProperties::default(),
    )
    .await
    .expect("publish");
    // The publish is asynchronous: poll basic.get briefly until the message is there.
    let deadline = Instant::now() + Duration::from_secs(5);
    let msg = loop {
        let got = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get");
        if let Some(m) = got {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "message published to a fresh queue never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(msg.delivery.data, b"ping");
    ch.queue_delete(q.as_str().into(), Default::default())
        .await
        .expect("delete");
    conn.close(200, "OK".into()).await.expect("close");
}
