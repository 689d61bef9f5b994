//! Fleet test harness: a `nats-server -js` inside a namespace the test creates (its JetStream
//! store in a temp dir; stopped by kill, restarted on the same store), and fleet nodes
//! (`examples/fleet_node`, built once) inside the same namespace, driven line by line, with
//! every output line kept with the time it arrived.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use super::netns::Netns;
use super::{require_root, require_tool};

/// True when the test can run (root, nats-server installed); otherwise skip (fail on CI).
pub fn require_fleet() -> bool {
    require_root() && require_tool("nats-server")
}

/// A JetStream broker on `addr`:`port` (127.0.0.1 unless told) inside `ns`.
pub struct Broker {
    ns: String,
    addr: String,
    pub port: u16,
    store: tempfile::TempDir,
    /// Extra arguments (cluster routes).
    extra: Vec<String>,
    child: Option<Child>,
}

impl Broker {
    pub fn start(ns: &Netns, port: u16) -> Broker {
        Broker::start_with(ns, port, &[])
    }

    pub fn start_with(ns: &Netns, port: u16, extra: &[&str]) -> Broker {
        Broker::start_on(ns, "127.0.0.1", port, extra)
    }

    /// A broker listening on `addr` (an address of `ns` that other namespaces reach).
    pub fn start_on(ns: &Netns, addr: &str, port: u16, extra: &[&str]) -> Broker {
        let mut b = Broker {
            ns: ns.name().to_owned(),
            addr: addr.to_owned(),
            port,
            store: tempfile::tempdir().expect("temp dir"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        b.restart();
        b
    }

    pub fn url(&self) -> String {
        format!("nats://{}:{}", self.addr, self.port)
    }

    /// Starts the server (again, on the same store); returns when it accepts clients.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let port = self.port.to_string();
        let store = self.store.path().join("js");
        let log = self.store.path().join("nats.log");
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "nats-server",
                "-js",
                "-a",
                &self.addr,
            ])
            .args(["-p", &port, "-sd"])
            .arg(&store)
            .arg("-l")
            .arg(&log)
            .args(&self.extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("Server is ready")) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("nats-server exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "nats-server not ready: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Later waits look for a newer "ready" line.
        let _ = std::fs::rename(&log, self.store.path().join("nats.log.old"));
        self.child = Some(child);
    }

    /// Kills the server (as a crash or a lost host would).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The max age (s) of `stream` as the broker stored it (its JetStream meta file).
    pub fn stream_max_age_secs(&self, stream: &str) -> Option<u64> {
        let meta = self
            .store
            .path()
            .join("js/jetstream/$G/streams")
            .join(stream)
            .join("meta.inf");
        let text = std::fs::read_to_string(meta).ok()?;
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(json["max_age"].as_u64()? / 1_000_000_000)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.store.path().join("nats.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

const LONG_WAIT: Duration = Duration::from_secs(10);

/// One line of a node's output and when the test read it.
#[derive(Clone, Debug)]
pub struct Line {
    pub text: String,
    pub at: Instant,
}

/// A `recv` line: KIND TARGET UNTIL_MS ORIGIN T_US.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recv {
    pub kind: String,
    pub target: String,
    pub until_ms: u64,
    pub origin: String,
    pub t_us: u64,
}

/// A fleet node process; killed on drop.
pub struct Node {
    pub name: String,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Line>,
    pub seen: Vec<Line>,
}

fn fleet_node_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(env!("CARGO"))
            .current_dir(manifest)
            .args(["build", "--quiet", "--example", "fleet_node"])
            .output()
            .expect("spawn cargo build");
        assert!(
            out.status.success(),
            "cargo build --example fleet_node: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest.join("target"));
        manifest.join(target).join("debug/examples/fleet_node")
    })
    .clone()
}

impl Node {
    /// Starts node `name` of fleet `fleet` inside `ns`; returns once it printed `ready`.
    pub fn start(ns: &Netns, fleet: &str, name: &str, servers: &[String], extra: &[&str]) -> Node {
        Node::start_env(ns, fleet, name, servers, extra, &[])
    }

    /// [`Node::start`] with environment variables (such as `SSL_CERT_FILE`).
    pub fn start_env(
        ns: &Netns,
        fleet: &str,
        name: &str,
        servers: &[String],
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> Node {
        let mut cmd = Command::new("ip");
        cmd.envs(env.iter().copied());
        cmd.args(["netns", "exec", ns.name()])
            .arg(fleet_node_bin())
            .args(["--fleet", fleet, "--node", name]);
        for s in servers {
            cmd.args(["--server", s]);
        }
        let mut child = cmd
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn fleet_node");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for text in BufReader::new(stdout).lines().map_while(Result::ok) {
                let at = Instant::now();
                if tx.send(Line { text, at }).is_err() {
                    return;
                }
            }
        });
        let mut node = Node {
            name: name.to_owned(),
            child,
            stdin,
            lines,
            seen: Vec::new(),
        };
        node.wait_for(|l| l == "ready", Duration::from_secs(10))
            .unwrap_or_else(|| panic!("node {name} not ready: {:?}", node.seen));
        node
    }

    pub fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("write to fleet_node");
        self.stdin.flush().expect("flush");
    }

    /// Reads new lines until one matches (returned) or `timeout` passes.
    pub fn wait_for(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<Line> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            self.seen.push(line.clone());
            if pred(&line.text) {
                return Some(line);
            }
        }
    }

    /// Reads whatever arrives within `d`.
    pub fn drain(&mut self, d: Duration) {
        let _ = self.wait_for(|_| false, d);
    }

    /// Every `recv` line so far.
    pub fn received(&self) -> Vec<Recv> {
        self.seen
            .iter()
            .filter_map(|l| parse_recv(&l.text))
            .collect()
    }

    /// Waits until `n` bans were received (or `timeout`); returns all received.
    pub fn wait_received(&mut self, n: usize, timeout: Duration) -> Vec<Recv> {
        let deadline = Instant::now() + timeout;
        let mut count = self.received().len();
        while count < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            count += usize::from(parse_recv(&line.text).is_some());
            self.seen.push(line);
        }
        self.received()
    }

    /// The link's status as JSON.
    pub fn status(&mut self) -> serde_json::Value {
        let before = self.seen.len();
        self.send("status");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(l) = self.seen[before..]
                .iter()
                .find(|l| l.text.starts_with("status "))
            {
                return serde_json::from_str(&l.text["status ".len()..]).expect("status json");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).expect("status line");
            self.seen.push(line);
        }
    }

    /// The `until_ms` printed with our last `sent` line for `target`.
    pub fn sent_until(&self, target: &str) -> Option<u64> {
        self.seen.iter().rev().find_map(|l| {
            let mut w = l.text.split_whitespace();
            (w.next() == Some("sent") && w.next() == Some(target))
                .then(|| w.next()?.parse().ok())
                .flatten()
        })
    }

    /// [`Node::wait_sent`], as an option for comparisons.
    pub fn wait_sent_until(&mut self, target: &str) -> Option<u64> {
        Some(self.wait_sent(target))
    }

    /// Waits for the `sent` line of `target`; its `until_ms`.
    pub fn wait_sent(&mut self, target: &str) -> u64 {
        if self.sent_until(target).is_none() {
            let prefix = format!("sent {target} ");
            let _ = self.wait_for(|l| l.starts_with(&prefix), LONG_WAIT);
        }
        self.sent_until(target).expect("sent line")
    }

    /// Closes the link (queued publications get up to 5 s) and waits for the process.
    pub fn close(mut self) -> serde_json::Value {
        self.send("close");
        let line = self
            .wait_for(|l| l.starts_with("closed "), Duration::from_secs(10))
            .expect("closed");
        let _ = self.child.wait();
        serde_json::from_str(&line.text["closed ".len()..]).expect("json")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test CA and a server certificate for 127.0.0.1 signed by it (openssl), in `dir`:
/// `ca.pem`, `server.pem`, `server.key`.
pub fn make_tls_files(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("spawn openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=autoblock test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    std::fs::write(dir.join("san.cnf"), "subjectAltName=IP:127.0.0.1\n").expect("write san.cnf");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
    ]);
}

pub fn parse_recv(text: &str) -> Option<Recv> {
    let mut w = text.strip_prefix("recv ")?.split_whitespace();
    Some(Recv {
        kind: w.next()?.to_owned(),
        target: w.next()?.to_owned(),
        until_ms: w.next()?.parse().ok()?,
        origin: w.next()?.to_owned(),
        t_us: w.next()?.parse().ok()?,
    })
}
