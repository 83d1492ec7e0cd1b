//! guest may connect from loopback only, as in RabbitMQ, and `--guest-remote` (or
//! `WARREN_GUEST_REMOTE`) lifts that.
//!
//! A non-loopback peer needs a second address. Each test makes a network namespace of its own
//! with a veth pair (`10.251.x.y/30`, the namespace's end and the host's end) and runs the
//! broker inside it on `0.0.0.0:5672`: a client in the test's namespace reaches it through the
//! veth pair, so the broker sees a non-loopback peer, and a socket opened from inside the
//! namespace reaches it on 127.0.0.1. Traffic never leaves this machine; the namespace and the
//! veth pair are removed when the test ends.
//!
//! Creating them needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and `ip`; without them the tests
//! print `SKIPPED: ...`, or fail when `WARREN_REQUIRE_NETNS=1` (scripts/test.sh sets it when run
//! as root, as CI is).

mod common;

use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::raw::{self, RawClient};
use common::*;
use lapin::protocol::{connection, AMQPClass};
use lapin::types::{AMQPValue, FieldTable, LongString};

const PORT: u16 = 5672;
const REFUSED: &str = "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. \
                       For details see the broker logfile.";

/// Runs `ip <args>`; Err with what it said when it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace joined to ours by a veth pair, removed on drop.
struct Netns {
    name: String,
    host_if: String,
    /// Our end's address (the peer the broker sees).
    host_ip: String,
    /// The namespace's end's address (where the broker listens).
    ns_ip: String,
}

impl Netns {
    fn create() -> Result<Netns, String> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // A /30 of 10.251.0.0/16 picked by pid and counter, skipped if already in use here.
        let taken = Command::new("ip")
            .args(["-o", "-4", "addr", "show"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .map_err(|e| format!("cannot run ip: {e}"))?;
        let (third, fourth) = (0..64u32)
            .map(|i| {
                let k = pid.wrapping_mul(64).wrapping_add(n * 7 + i) % (250 * 63);
                (k / 63, (k % 63) * 4)
            })
            .find(|(a, b)| !taken.contains(&format!("10.251.{a}.{}/", b + 1)))
            .ok_or("no free 10.251.x.y/30")?;
        let net = Netns {
            name: format!("warren-guest-{pid}-{n}"),
            host_if: format!("wg{}h{n}", pid % 1_000_000),
            host_ip: format!("10.251.{third}.{}", fourth + 1),
            ns_ip: format!("10.251.{third}.{}", fourth + 2),
        };
        let ns_if = format!("wg{}n{n}", pid % 1_000_000);
        // Drop removes whatever part was made if a step fails.
        ip(&["netns", "add", &net.name])?;
        ip(&[
            "link",
            "add",
            &net.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
        ])?;
        ip(&["link", "set", &ns_if, "netns", &net.name])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/30", net.host_ip),
            "dev",
            &net.host_if,
        ])?;
        ip(&["link", "set", &net.host_if, "up"])?;
        let in_ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &net.name, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        in_ns(&["addr", "add", &format!("{}/30", net.ns_ip), "dev", &ns_if])?;
        in_ns(&["link", "set", &ns_if, "up"])?;
        in_ns(&["link", "set", "lo", "up"])?;
        Ok(net)
    }

    /// A TCP connection to 127.0.0.1:`port` made from inside the namespace.
    fn connect_loopback(&self, port: u16) -> tokio::net::TcpStream {
        let path = format!("/var/run/netns/{}", self.name);
        let stream = std::thread::spawn(move || -> std::io::Result<std::net::TcpStream> {
            let ns = std::fs::File::open(&path)?;
            // SAFETY: setns(2) on a file descriptor we own; it moves only this short-lived
            // thread into the namespace, and the socket stays in it.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            std::net::TcpStream::connect(("127.0.0.1", port))
        })
        .join()
        .expect("netns thread")
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port} inside {}: {e}", self.name));
        stream.set_nonblocking(true).expect("nonblocking");
        tokio::net::TcpStream::from_std(stream).expect("tokio stream")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes both.
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A broker running inside a namespace, killed on drop (before the namespace goes).
struct NsBroker {
    child: Child,
    log_path: std::path::PathBuf,
    net: Netns,
    _dir: tempfile::TempDir,
}

impl NsBroker {
    /// Makes a namespace and starts warren in it with `args` and the `WARREN_*` variables in
    /// `env`; None (after saying why) when no namespace can be made here.
    async fn start(test: &str, args: &[&str], env: &[(&str, &str)]) -> Option<NsBroker> {
        let net = match Netns::create() {
            Ok(net) => net,
            Err(why) => {
                let why = format!("{test} needs a network namespace and a veth pair: {why}");
                assert!(
                    std::env::var("WARREN_REQUIRE_NETNS").as_deref() != Ok("1"),
                    "{why} (WARREN_REQUIRE_NETNS=1)"
                );
                skipped(&why);
                return None;
            }
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let log_path = dir.path().join("warren.log");
        let log = std::fs::File::create(&log_path).expect("log");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &net.name, env!("CARGO_BIN_EXE_warren")]);
        cmd.args(["--amqp-listen", &format!("0.0.0.0:{PORT}"), "--no-http"]);
        cmd.arg("--data-dir").arg(dir.path().join("data"));
        cmd.args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("WARREN_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn ip netns exec warren");
        let mut broker = NsBroker {
            child,
            log_path,
            net,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(broker.remote_addr())
            .await
            .is_err()
        {
            if let Some(status) = broker.child.try_wait().expect("try_wait") {
                panic!(
                    "warren exited ({status}) in the namespace:\n{}",
                    broker.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "warren did not listen on {} within 30 s:\n{}",
                broker.remote_addr(),
                broker.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(broker)
    }

    /// Where the broker is reached from outside the namespace.
    fn remote_addr(&self) -> String {
        format!("{}:{PORT}", self.net.ns_ip)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for NsBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- warren log ----\n{}\n----", self.log());
        }
    }
}

/// Protocol header, start, start-ok as guest/guest (with authentication_failure_close):
/// Ok(()) when the broker goes on with connection.tune, Err(close) when it refuses.
async fn guest_login(c: &mut RawClient) -> Result<(), raw::Close> {
    c.write(raw::PROTOCOL_HEADER).await;
    match c.expect_method().await {
        (0, AMQPClass::Connection(connection::AMQPMethod::Start(_))) => {}
        other => panic!("expected connection.start, got {other:?}"),
    }
    let mut caps = FieldTable::default();
    caps.insert(
        "authentication_failure_close".into(),
        AMQPValue::Boolean(true),
    );
    let mut props = FieldTable::default();
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    c.write(&raw::method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: props,
            mechanism: "PLAIN".into(),
            response: LongString::from(&b"\0guest\0guest"[..]),
            locale: "en_US".into(),
        })),
    ))
    .await;
    match method_or_close(c).await {
        Ok(AMQPClass::Connection(connection::AMQPMethod::Tune(_))) => Ok(()),
        Ok(other) => panic!("expected connection.tune or close, got {other:?}"),
        Err(close) => Err(close),
    }
}

/// The next method, or the connection.close it is.
async fn method_or_close(c: &mut RawClient) -> Result<AMQPClass, raw::Close> {
    let (ch, m) = c.expect_method().await;
    match m {
        AMQPClass::Connection(connection::AMQPMethod::Close(close)) => Err(raw::Close {
            channel: ch,
            code: close.reply_code,
            text: close.reply_text.to_string(),
            class_id: close.class_id,
            method_id: close.method_id,
        }),
        other => Ok(other),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_connects_from_loopback_only() {
    if skip_if_external("guest_connects_from_loopback_only") {
        return;
    }
    within(async {
        let Some(broker) = NsBroker::start("guest_connects_from_loopback_only", &[], &[]).await
        else {
            return;
        };
        // From the host's end of the veth pair: refused with RabbitMQ's 403.
        let mut remote = RawClient::connect(&broker.remote_addr()).await;
        let close = guest_login(&mut remote)
            .await
            .expect_err("guest must be refused from a non-loopback address");
        assert_eq!(
            (close.channel, close.code, close.text.as_str()),
            (0, 403, REFUSED),
            "peer {}",
            broker.net.host_ip
        );
        remote.close_ok_and_expect_socket_closed().await;
        // lapin sees an error too.
        let uri = format!("amqp://guest:guest@{}/%2f", broker.remote_addr());
        assert!(
            lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
                .await
                .is_err(),
            "lapin connected as guest from {}",
            broker.net.host_ip
        );
        // The same broker lets guest in over loopback.
        let mut local = RawClient::from_stream(broker.net.connect_loopback(PORT));
        guest_login(&mut local)
            .await
            .unwrap_or_else(|c| panic!("guest refused over loopback: {c:?}"));
    })
    .await
}

async fn guest_connects_remotely_with(test: &str, args: &[&str], env: &[(&str, &str)]) {
    if skip_if_external(test) {
        return;
    }
    within(async {
        let Some(broker) = NsBroker::start(test, args, env).await else {
            return;
        };
        // A whole session as guest from the non-loopback address.
        assert_broker_serves(&format!("amqp://guest:guest@{}/%2f", broker.remote_addr())).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_remote_flag_lets_guest_connect_from_elsewhere() {
    guest_connects_remotely_with(
        "guest_remote_flag_lets_guest_connect_from_elsewhere",
        &["--guest-remote"],
        &[],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_remote_variable_lets_guest_connect_from_elsewhere() {
    guest_connects_remotely_with(
        "guest_remote_variable_lets_guest_connect_from_elsewhere",
        &[],
        &[("WARREN_GUEST_REMOTE", "true")],
    )
    .await
}
