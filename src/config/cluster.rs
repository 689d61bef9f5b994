//! Validation of `[cluster]`: server URLs the NATS client accepts (`nats://` or `tls://`), fleet
//! and node names that are safe as NATS subject tokens and JetStream names, the `share` kinds.
//! The node's default (the host name) is resolved at start by `cluster::resolve_node`, not here.

use std::path::PathBuf;

use toml::Spanned;

use super::raw::{RawCluster, S};
use super::validate::Ctx;
use super::{ClusterConfig, ShareKinds};

/// Longest fleet name: it is part of the stream name and of every subject.
pub const FLEET_NAME_MAX: usize = 32;
/// Longest node name: it is a subject token, the durable consumer's name and each message's
/// `origin`.
pub const NODE_NAME_MAX: usize = 64;

/// A fleet or node name: 1 to `max` characters of A-Z a-z 0-9 _ - (what a NATS subject token,
/// a stream name and a consumer name all accept, with no wildcard and no dot).
pub fn is_cluster_name(text: &str, max: usize) -> bool {
    (1..=max).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(super) fn cluster(ctx: &mut Ctx, raw: &RawCluster) -> ClusterConfig {
    let defaults = ClusterConfig::default();
    let name = match &raw.name {
        None => defaults.name,
        Some(n) => {
            name_problem(ctx, n, "cluster.name", FLEET_NAME_MAX);
            n.get_ref().clone()
        }
    };
    let node = match &raw.node {
        Some(n) if !n.get_ref().is_empty() => {
            name_problem(ctx, n, "cluster.node", NODE_NAME_MAX);
            Some(n.get_ref().clone())
        }
        _ => None,
    };
    ClusterConfig {
        servers: servers(ctx, &raw.servers),
        name,
        node,
        share: share(ctx, &raw.share),
        accept: raw.accept.unwrap_or(defaults.accept),
        credentials: raw
            .credentials
            .as_ref()
            .filter(|c| !c.trim().is_empty())
            .map(PathBuf::from),
    }
}

fn name_problem(ctx: &mut Ctx, value: &Spanned<String>, key: &str, max: usize) {
    let text = value.get_ref();
    if !is_cluster_name(text, max) {
        let msg = format!("`{text}` is not a name here (1-{max} characters of A-Z a-z 0-9 _ -)");
        ctx.at(value.span(), key, msg);
    }
}

/// Each URL must name its scheme (`nats://` or `tls://`) and a host; duplicates are mistakes.
fn servers(ctx: &mut Ctx, raw: &S<Vec<Spanned<String>>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, url) in raw.iter().flat_map(|v| v.get_ref()).enumerate() {
        let key = format!("cluster.servers[{i}]");
        let text = url.get_ref().trim();
        match server_problem(text) {
            Some(why) => {
                let msg = format!(
                    "`{text}` is not a NATS server URL such as nats://10.0.0.5:4222 or tls://nats.example.net:4222 ({why})"
                );
                ctx.at(url.span(), &key, msg);
            }
            None if out.iter().any(|s| s == text) => {
                ctx.at(url.span(), &key, format!("`{text}` is listed twice"));
            }
            None => out.push(text.to_owned()),
        }
    }
    out
}

/// Why `text` is not a server URL the NATS client will use, or `None` when it is one.
fn server_problem(text: &str) -> Option<String> {
    let Some((scheme, _)) = text.split_once("://") else {
        return Some("no scheme".to_owned());
    };
    if scheme != "nats" && scheme != "tls" {
        return Some(format!("scheme `{scheme}`, expected nats or tls"));
    }
    let addr = match text.parse::<async_nats::ServerAddr>() {
        Ok(addr) => addr,
        Err(e) => return Some(e.to_string()),
    };
    if addr.host().is_empty() {
        Some("no host".to_owned())
    } else if addr.into_inner().path().len() > 1 {
        Some("a path is not allowed".to_owned())
    } else {
        None
    }
}

fn share(ctx: &mut Ctx, raw: &S<Vec<Spanned<String>>>) -> ShareKinds {
    let Some(list) = raw else {
        return ClusterConfig::default().share;
    };
    let mut kinds = ShareKinds {
        rules: false,
        manual: false,
    };
    for (i, item) in list.get_ref().iter().enumerate() {
        let key = format!("cluster.share[{i}]");
        let flag = match item.get_ref().as_str() {
            "rules" => &mut kinds.rules,
            "manual" => &mut kinds.manual,
            other => {
                let msg = format!("unknown kind `{other}`, expected \"rules\" or \"manual\"");
                ctx.at(item.span(), &key, msg);
                continue;
            }
        };
        if *flag {
            let msg = format!("`{}` is listed twice", item.get_ref());
            ctx.at(item.span(), &key, msg);
        }
        *flag = true;
    }
    kinds
}
