//! A fleet node without the daemon: the `autoblock::cluster` link driven by commands on stdin,
//! printing what it receives with the wall-clock time. The fleet tests (`tests/it/fleet.rs`)
//! and `benches/fleet.sh` run it inside network namespaces.
//!
//! ```text
//! fleet_node --server nats://10.0.0.5:4222 [--server ...] --fleet web --node a [--max-ban 1h]
//!            [--no-accept] [--creds FILE]
//! stdin:  block TARGET SECS [RULE] | extend TARGET SECS | unblock TARGET
//!         burst N FIRST_IPV4 SECS   (N blocks of consecutive addresses)
//!         raw TEXT                  (TEXT as-is on this node's subject, for malformed-input tests)
//!         status | close
//! stdout: ready | sent TARGET UNTIL_MS T_US | burst-sent N T_US | status JSON | raw-ok
//!         raw-err WHY | recv KIND TARGET UNTIL_MS ORIGIN T_US | closed JSON
//!         connected T_US | disconnected T_US   (link state changes, seen within 10 ms)
//! ```

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use autoblock::cluster::{self, BanKind, BanNotice, ClusterHandle, FleetNames};
use autoblock::config::{ClusterConfig, ShareKinds, duration};
use autoblock::time::Timestamp;
use clap::Parser;
use ipnet::IpNet;

#[derive(Parser)]
struct Args {
    #[arg(long = "server", required = true)]
    servers: Vec<String>,
    #[arg(long, default_value = "default")]
    fleet: String,
    #[arg(long)]
    node: String,
    #[arg(long, default_value = "1h")]
    max_ban: String,
    #[arg(long)]
    no_accept: bool,
    #[arg(long)]
    creds: Option<std::path::PathBuf>,
}

fn now() -> Timestamp {
    Timestamp::from_unix(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let config = ClusterConfig {
        servers: args.servers.clone(),
        name: args.fleet.clone(),
        node: Some(args.node.clone()),
        share: ShareKinds {
            rules: true,
            manual: true,
        },
        accept: !args.no_accept,
        credentials: args.creds.clone(),
    };
    let max_ban = duration::parse(&args.max_ban)?;
    let (handle, mut remote) = cluster::start(&config, &args.node, max_ban).await?;
    tokio::spawn(async move {
        while let Some(m) = remote.recv().await {
            let until_ms = m.until.as_micros() / 1000;
            let target = cluster::message::target_text(m.target);
            let t = now().as_micros();
            println!(
                "recv {} {target} {until_ms} {} {t}",
                m.kind.as_str(),
                m.origin
            );
        }
    });
    tokio::spawn(watch_connection(handle.clone()));
    println!("ready");
    let mut lines = stdin_lines();
    while let Some(line) = lines.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"close") {
            handle.close(Duration::from_secs(5)).await;
            println!("closed {}", serde_json::to_string(&handle.status())?);
            return Ok(());
        }
        if let Err(e) = command(&handle, &args, &words).await {
            println!("error {e}");
        }
    }
    handle.close(Duration::from_secs(5)).await;
    Ok(())
}

/// Prints each change of the link's connection state.
async fn watch_connection(handle: ClusterHandle) {
    let mut was = false;
    loop {
        let connected = handle.status().connected;
        if connected != was {
            let word = if connected {
                "connected"
            } else {
                "disconnected"
            };
            println!("{word} {}", now().as_micros());
            was = connected;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Lines of stdin, read by a thread of their own (tokio's stdin is not enabled here).
fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

async fn command(
    handle: &ClusterHandle,
    args: &Args,
    words: &[&str],
) -> Result<(), Box<dyn std::error::Error>> {
    match words {
        ["block" | "extend", target, secs, rest @ ..] => {
            let kind = if words[0] == "block" {
                BanKind::Block
            } else {
                BanKind::Extend
            };
            let secs: u64 = secs.parse()?;
            let rule = rest.first().copied().unwrap_or("manual");
            publish(handle, kind, target_net(target)?, secs, rule);
        }
        // An unblock carries the end of the ban it lifts; here: at most max_ban away.
        ["unblock", target] => {
            let secs = duration::parse(&args.max_ban)?.as_secs();
            publish(
                handle,
                BanKind::Unblock,
                target_net(target)?,
                secs,
                "manual",
            );
        }
        ["burst", n, first, secs] => {
            let (n, first, secs): (u32, Ipv4Addr, u64) =
                (n.parse()?, first.parse()?, secs.parse()?);
            println!("burst-sent {n} {}", now().as_micros());
            for i in 0..n {
                let addr = Ipv4Addr::from(u32::from(first).wrapping_add(i));
                notice(
                    handle,
                    BanKind::Block,
                    IpNet::from(std::net::IpAddr::V4(addr)),
                    secs,
                    "burst",
                );
            }
        }
        ["raw", ..] => {
            let text = words[1..].join(" ");
            match raw(args, text).await {
                Ok(()) => println!("raw-ok"),
                Err(e) => println!("raw-err {e}"),
            }
        }
        ["status"] => println!("status {}", serde_json::to_string(&handle.status())?),
        _ => return Err(format!("unknown command: {}", words.join(" ")).into()),
    }
    Ok(())
}

fn target_net(text: &str) -> Result<IpNet, String> {
    cluster::message::canonical_target(text).ok_or_else(|| format!("not a target: {text}"))
}

fn publish(handle: &ClusterHandle, kind: BanKind, target: IpNet, secs: u64, rule: &str) {
    let t = now().as_micros();
    let until = notice(handle, kind, target, secs, rule);
    let until_ms = until.as_micros() / 1000;
    println!(
        "sent {} {until_ms} {t}",
        cluster::message::target_text(target)
    );
}

/// Publishes; returns the end time sent.
fn notice(
    handle: &ClusterHandle,
    kind: BanKind,
    target: IpNet,
    secs: u64,
    rule: &str,
) -> Timestamp {
    let at = now();
    let until = at.saturating_add(Duration::from_secs(secs));
    handle.publish(BanNotice {
        kind,
        target,
        until,
        at,
        rule: rule.to_owned(),
        offense: 1,
        manual: true,
    });
    until
}

/// Publishes `text` unchecked on this node's subject through a separate connection.
async fn raw(args: &Args, text: String) -> Result<(), Box<dyn std::error::Error>> {
    let client = async_nats::connect(args.servers.as_slice()).await?;
    let js = async_nats::jetstream::new(client);
    let subject = FleetNames::new(&args.fleet, &args.node).own_subject;
    js.publish(subject, text.into()).await?.await?;
    Ok(())
}
