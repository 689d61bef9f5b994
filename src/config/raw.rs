//! Stage one: serde structs that mirror `rules.toml` key for key. They are also the list of
//! known keys (`keys.rs` reads their field names): every unknown key of a file is reported at
//! once from that list, before serde runs. Every key is optional here and values keep their
//! spans, so validation (stage two) can apply the defaults and point at the line and column of
//! each problem. No meaning is checked here.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

/// A key's value with its byte span in the file.
pub type S<T> = Option<Spanned<T>>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawConfig {
    pub capture: RawCapture,
    pub enforce: RawEnforce,
    pub allow: RawAllow,
    pub limits: RawLimits,
    pub events: RawEvents,
    pub control: RawControl,
    pub state: RawState,
    pub metrics: RawMetrics,
    pub cluster: RawCluster,
    /// `[[rule]]` tables; the span of each is used for problems such as a missing required key.
    pub rule: Vec<Spanned<RawRule>>,
    /// `[[flood]]` tables, spanned like `rule`.
    pub flood: Vec<Spanned<RawFlood>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawCapture {
    pub interfaces: S<Vec<Spanned<String>>>,
    pub bpf_filter: Option<String>,
    pub snaplen: S<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawEnforce {
    pub backend: S<String>,
    pub chain: S<String>,
    pub hooks: S<Vec<Spanned<String>>>,
    pub ban: S<DurationText>,
    pub max_ban: S<DurationText>,
    pub repeat_window: S<DurationText>,
    pub repeat_multiplier: S<f64>,
    pub max_active_bans: S<i64>,
    pub max_new_bans_per_sec: S<i64>,
    pub keep_on_exit: Option<bool>,
    pub dry_run: Option<bool>,
    pub extend_while_active: Option<bool>,
    pub check_interval: S<DurationText>,
    pub priority: S<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawAllow {
    pub nets: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawLimits {
    pub max_tracked_sources: S<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawEvents {
    pub file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawControl {
    pub socket: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawState {
    pub dir: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawMetrics {
    pub listen: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawCluster {
    pub servers: S<Vec<Spanned<String>>>,
    pub name: S<String>,
    pub node: S<String>,
    pub share: S<Vec<Spanned<String>>>,
    pub accept: Option<bool>,
    pub credentials: Option<String>,
}

/// One `[[rule]]`. Required keys are optional here so that all missing ones are reported.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawRule {
    pub name: S<String>,
    pub protocol: S<String>,
    pub tcp_flags: S<String>,
    pub dst_ports: S<Vec<Spanned<PortSpec>>>,
    pub metric: S<String>,
    pub threshold: S<i64>,
    pub window: S<DurationText>,
    pub ban: S<DurationText>,
    pub aggregate_v4: S<i64>,
    pub aggregate_v6: S<i64>,
    pub skip_replies: Option<bool>,
    pub ban_verified_peers: Option<bool>,
    pub mode: S<String>,
    pub exempt: S<Vec<Spanned<String>>>,
}

/// One `[[flood]]`. Required keys are optional here so that all missing ones are reported.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawFlood {
    pub name: S<String>,
    pub protocol: S<String>,
    pub src_ports: S<Vec<Spanned<PortSpec>>>,
    pub dst_ports: S<Vec<Spanned<PortSpec>>>,
    pub tcp_flags: S<String>,
    pub fragments: S<String>,
    pub metric: S<String>,
    pub threshold: S<i64>,
    pub window: S<DurationText>,
    pub action: S<String>,
    pub ban: S<DurationText>,
    pub scope: S<String>,
}

/// A duration as written (`"10m"`); parsed in validation so that every bad one is reported.
/// Its own type only for a clear "expected" when the value is not a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationText(pub String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"90s\", \"10m\", \"2h\" or \"1d\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText(v.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}

/// An entry of `dst_ports`: a port number or a range string such as `"8000-8100"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    Number(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or a range string such as \"8000-8100\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortSpec, E> {
                Ok(PortSpec::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortSpec, E> {
                Ok(PortSpec::Number(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortSpec, E> {
                Ok(PortSpec::Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}
