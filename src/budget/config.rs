//! Budget configuration and the pulled limits document, parsed with errors that name the field.
//!
//! Both the plugin configuration's `budget` section and the JSON document of limits served by
//! a billing system describe budgets the same way, so both go through [`parse_budget`]. The
//! parser walks a `serde_json::Value` by hand instead of deriving `Deserialize` field by field:
//! serde's derived errors say "invalid type: string, expected u64" without saying *which*
//! field, and an operator fixing a rejected config needs `budget.budgets[2].limit_usd`.
//! Unknown fields are rejected everywhere (the hand-written equivalent of
//! `deny_unknown_fields`), because a misspelt `limit_usd` silently meaning "no limit" is the
//! worst failure a budget can have. Money is parsed from its decimal text straight into
//! pico-USD by the price parser (`pricing::decimal`); no float is ever involved in a limit.

use super::window::Window;
use super::BudgetError;
use crate::pricing::decimal::{f64_text, parse_scaled_exact};
use crate::pricing::PicoUsd;
use serde_json::{Map, Value};

/// Dimensions every deployment has (attribution headers `x-llm-*`).
pub const BUILTIN_DIMENSIONS: [&str; 3] = ["customer", "feature", "user"];

/// Retries of one compare-and-swap update before giving up (see [`StoreErrorPolicy`]).
pub const DEFAULT_CAS_RETRIES: u32 = 32;

/// The plugin configuration's budget section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Budgets in configuration order; the first rejecting budget is the one reported.
    pub budgets: Vec<BudgetDef>,
    /// Output tokens reserved when neither the request nor a cap bounds them.
    pub default_max_output_tokens: u64,
    /// Add remaining-budget headers to allowed responses too (429s always carry them).
    pub remaining_headers: bool,
    /// What to do when shared data cannot be read or CAS retries run out.
    pub on_store_error: StoreErrorPolicy,
    /// What a hard USD budget does with a model that has no price.
    pub unpriced: UnpricedPolicy,
    /// Request-body bytes per estimated prompt token (default 4).
    pub bytes_per_token: u64,
    /// Largest request body the output-cap rewrite will parse.
    pub max_rewrite_bytes: u64,
    /// Compare-and-swap attempts per update.
    pub cas_retries: u32,
    /// Where limits are pulled from at run time, if anywhere.
    pub limits_source: Option<LimitsSource>,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            budgets: Vec::new(),
            default_max_output_tokens: 4_096,
            remaining_headers: false,
            on_store_error: StoreErrorPolicy::Allow,
            unpriced: UnpricedPolicy::Allow,
            bytes_per_token: 4,
            max_rewrite_bytes: 1 << 20,
            cas_retries: DEFAULT_CAS_RETRIES,
            limits_source: None,
        }
    }
}

/// One budget: which requests it counts, its limits, window and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetDef {
    pub id: String,
    /// Dimension name -> value, sorted by dimension name. Empty matches every request.
    pub matcher: Vec<(String, MatchValue)>,
    pub limit_usd: Option<PicoUsd>,
    pub limit_tokens: Option<u64>,
    /// `None` only for a cap-only rule (no limit, nothing counted).
    pub window: Option<Window>,
    pub mode: Mode,
    /// Clamp requests' max output tokens to this.
    pub output_cap: Option<u64>,
}

impl BudgetDef {
    /// Whether the budget counts anything (a cap-only rule does not touch shared data).
    pub fn has_limit(&self) -> bool {
        self.limit_usd.is_some() || self.limit_tokens.is_some()
    }
}

/// What a match entry requires of a dimension's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchValue {
    /// `*`: any value, with a separate budget per distinct value.
    Each,
    /// This exact value.
    Exact(String),
}

/// Hard budgets reject; soft budgets allow, flag `soft_exceeded`, and keep counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Hard,
    Soft,
}

/// Fail open (`allow`, the default: metering must never break traffic) or closed (`reject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorPolicy {
    Allow,
    Reject,
}

/// `allow` (default): an unpriced model reserves and spends 0 USD (token limits still apply).
/// `reject`: a request for an unpriced model is rejected by any hard USD budget it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnpricedPolicy {
    Allow,
    Reject,
}

/// An HTTP endpoint serving the limits document, fetched through an Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsSource {
    pub cluster: String,
    pub path: String,
    /// `:authority` of the pull; defaults to the cluster name.
    pub authority: String,
    pub interval_seconds: u64,
    pub timeout_ms: u64,
}

/// The limits document served by a billing or plan system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsDoc {
    pub version: Option<String>,
    pub budgets: Vec<BudgetDef>,
}

impl LimitsDoc {
    /// Parses `{"version": "...", "budgets": [ ... ]}`. Errors name the field, e.g.
    /// `budgets[1].window`.
    pub fn parse(bytes: &[u8]) -> Result<Self, BudgetError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| BudgetError::NotJson {
            field: "limits document".into(),
            detail: e.to_string(),
        })?;
        let map = object(&value, "limits document")?;
        check_keys(map, "", &["version", "budgets"])?;
        let version = match map.get("version") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => return Err(invalid("version", "a string")),
        };
        let budgets = parse_budget_list(map.get("budgets"), "budgets")?.ok_or_else(|| {
            BudgetError::Missing {
                field: "budgets".into(),
            }
        })?;
        Ok(Self { version, budgets })
    }

    /// The budgets in effect: configured budgets overridden by pulled ones with the same id,
    /// plus pulled budgets with new ids. Configured budgets absent from the document stay:
    /// the configuration holds defaults, the document holds plan-specific limits.
    pub fn merge_into(&self, configured: &[BudgetDef]) -> Vec<BudgetDef> {
        let mut out: Vec<BudgetDef> = configured
            .iter()
            .map(|c| {
                self.budgets
                    .iter()
                    .find(|p| p.id == c.id)
                    .unwrap_or(c)
                    .clone()
            })
            .collect();
        for pulled in &self.budgets {
            if !configured.iter().any(|c| c.id == pulled.id) {
                out.push(pulled.clone());
            }
        }
        out
    }
}

impl BudgetConfig {
    /// Parses the budget section from JSON text (what a pipeline config holds as a `Value`).
    pub fn parse(bytes: &[u8]) -> Result<Self, BudgetError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| BudgetError::NotJson {
            field: "budget".into(),
            detail: e.to_string(),
        })?;
        Self::from_value(&value, "budget")
    }

    /// Parses the budget section; `prefix` is its path in the plugin config, used in errors.
    pub fn from_value(value: &Value, prefix: &str) -> Result<Self, BudgetError> {
        let map = object(value, prefix)?;
        let p = |k: &str| join(prefix, k);
        check_keys(
            map,
            prefix,
            &[
                "budgets",
                "default_max_output_tokens",
                "remaining_headers",
                "on_store_error",
                "unpriced",
                "bytes_per_token",
                "max_rewrite_bytes",
                "cas_retries",
                "limits_source",
            ],
        )?;
        let d = Self::default();
        let budgets = parse_budget_list(map.get("budgets"), &p("budgets"))?.unwrap_or_default();
        let default_max_output_tokens = positive(map, "default_max_output_tokens", prefix)?
            .unwrap_or(d.default_max_output_tokens);
        let remaining_headers = match map.get("remaining_headers") {
            None => d.remaining_headers,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid(&p("remaining_headers"), "true or false")),
        };
        let on_store_error = match opt_str(map, "on_store_error", prefix)? {
            None => d.on_store_error,
            Some("allow") => StoreErrorPolicy::Allow,
            Some("reject") => StoreErrorPolicy::Reject,
            Some(_) => return Err(invalid(&p("on_store_error"), "`allow` or `reject`")),
        };
        let unpriced = match opt_str(map, "unpriced", prefix)? {
            None => d.unpriced,
            Some("allow") => UnpricedPolicy::Allow,
            Some("reject") => UnpricedPolicy::Reject,
            Some(_) => return Err(invalid(&p("unpriced"), "`allow` or `reject`")),
        };
        let bytes_per_token =
            positive(map, "bytes_per_token", prefix)?.unwrap_or(d.bytes_per_token);
        if bytes_per_token > 64 {
            return Err(invalid(&p("bytes_per_token"), "an integer from 1 to 64"));
        }
        let max_rewrite_bytes =
            positive(map, "max_rewrite_bytes", prefix)?.unwrap_or(d.max_rewrite_bytes);
        let cas_retries = match positive(map, "cas_retries", prefix)? {
            None => d.cas_retries,
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| *n <= 1_000)
                .ok_or_else(|| invalid(&p("cas_retries"), "an integer from 1 to 1000"))?,
        };
        let limits_source = match map.get("limits_source") {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_limits_source(v, &p("limits_source"))?),
        };
        Ok(Self {
            budgets,
            default_max_output_tokens,
            remaining_headers,
            on_store_error,
            unpriced,
            bytes_per_token,
            max_rewrite_bytes,
            cas_retries,
            limits_source,
        })
    }

    /// Checks that every matched dimension is built in or configured (attribution owns the
    /// list of extra dimensions, so the pipeline calls this once both are parsed).
    pub fn validate_dimensions(&self, extra: &[&str]) -> Result<(), BudgetError> {
        validate_dimensions(&self.budgets, "budget.budgets", extra)
    }
}

/// [`BudgetConfig::validate_dimensions`] for any budget list (e.g. a pulled document).
pub fn validate_dimensions(
    budgets: &[BudgetDef],
    prefix: &str,
    extra: &[&str],
) -> Result<(), BudgetError> {
    for (i, b) in budgets.iter().enumerate() {
        for (dim, _) in &b.matcher {
            if !BUILTIN_DIMENSIONS.contains(&dim.as_str()) && !extra.contains(&dim.as_str()) {
                return Err(invalid(
                    &format!("{prefix}[{i}].match.{dim}"),
                    "a known dimension (customer, feature, user or a configured dimension)",
                ));
            }
        }
    }
    Ok(())
}

impl<'de> serde::Deserialize<'de> for BudgetConfig {
    /// Lets the pipeline embed the section in its derived config; the error text keeps the
    /// field path (relative to the section).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Self::from_value(&value, "budget").map_err(serde::de::Error::custom)
    }
}

fn parse_budget_list(v: Option<&Value>, path: &str) -> Result<Option<Vec<BudgetDef>>, BudgetError> {
    let items = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid(path, "a list of budgets")),
    };
    let mut out: Vec<BudgetDef> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let b = parse_budget(item, &format!("{path}[{i}]"))?;
        if out.iter().any(|o| o.id == b.id) {
            return Err(BudgetError::DuplicateId {
                field: format!("{path}[{i}].id"),
                id: b.id,
            });
        }
        out.push(b);
    }
    Ok(Some(out))
}

/// Parses one budget object at `path` (e.g. `budgets[3]`).
pub fn parse_budget(v: &Value, path: &str) -> Result<BudgetDef, BudgetError> {
    let map = object(v, path)?;
    check_keys(
        map,
        path,
        &[
            "id",
            "match",
            "limit_usd",
            "limit_tokens",
            "window",
            "mode",
            "output_cap",
        ],
    )?;
    let p = |k: &str| join(path, k);
    let id = opt_str(map, "id", path)?
        .ok_or_else(|| BudgetError::Missing { field: p("id") })?
        .to_string();
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(invalid(&p("id"), "1 to 64 characters of A-Z a-z 0-9 _ - ."));
    }
    let matcher = match map.get("match") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => {
            let mut out = Vec::with_capacity(m.len());
            for (dim, val) in m {
                let field = format!("{}.{dim}", p("match"));
                if dim.is_empty() {
                    return Err(invalid(&field, "a dimension name"));
                }
                match val {
                    Value::String(s) if s == "*" => out.push((dim.clone(), MatchValue::Each)),
                    Value::String(s) => out.push((dim.clone(), MatchValue::Exact(s.clone()))),
                    _ => return Err(invalid(&field, "a string value or `*`")),
                }
            }
            // The non-generic merge sort the price table uses: std's stable sort is ~4.5 KB.
            crate::pricing::sort_by_name(&mut out, |m| &m.0);
            out
        }
        Some(_) => return Err(invalid(&p("match"), "an object of dimension -> value")),
    };
    let limit_usd = match map.get("limit_usd") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_usd(v, &p("limit_usd"))?),
    };
    let limit_tokens = match map.get("limit_tokens") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| invalid(&p("limit_tokens"), "a non-negative integer"))?,
        ),
    };
    let output_cap = positive(map, "output_cap", path)?;
    let window = match opt_str(map, "window", path)? {
        None => None,
        Some(s) => Some(
            Window::parse(s)
                .ok_or_else(|| invalid(&p("window"), "`minute`, `hour`, `day` or `month`"))?,
        ),
    };
    let mode = match opt_str(map, "mode", path)? {
        None | Some("hard") => Mode::Hard,
        Some("soft") => Mode::Soft,
        Some(_) => return Err(invalid(&p("mode"), "`hard` or `soft`")),
    };
    let has_limit = limit_usd.is_some() || limit_tokens.is_some();
    if !has_limit && output_cap.is_none() {
        return Err(BudgetError::Missing {
            field: format!("{path}.limit_usd, limit_tokens or output_cap"),
        });
    }
    if has_limit && window.is_none() {
        return Err(BudgetError::Missing { field: p("window") });
    }
    Ok(BudgetDef {
        id,
        matcher,
        limit_usd,
        limit_tokens,
        window,
        mode,
        output_cap,
    })
}

fn parse_limits_source(v: &Value, path: &str) -> Result<LimitsSource, BudgetError> {
    let map = object(v, path)?;
    check_keys(
        map,
        path,
        &[
            "cluster",
            "path",
            "authority",
            "interval_seconds",
            "timeout_ms",
        ],
    )?;
    let p = |k: &str| join(path, k);
    let cluster = opt_str(map, "cluster", path)?
        .filter(|c| !c.is_empty())
        .ok_or_else(|| BudgetError::Missing {
            field: p("cluster"),
        })?
        .to_string();
    let req_path = opt_str(map, "path", path)?.unwrap_or("/").to_string();
    if !req_path.starts_with('/') {
        return Err(invalid(&p("path"), "a path starting with `/`"));
    }
    let authority = opt_str(map, "authority", path)?
        .map(str::to_string)
        .unwrap_or_else(|| cluster.clone());
    let interval_seconds = positive(map, "interval_seconds", path)?.unwrap_or(30);
    if interval_seconds > 86_400 {
        return Err(invalid(
            &p("interval_seconds"),
            "an integer from 1 to 86400",
        ));
    }
    let timeout_ms = positive(map, "timeout_ms", path)?.unwrap_or(5_000);
    if timeout_ms > 60_000 {
        return Err(invalid(&p("timeout_ms"), "an integer from 1 to 60000"));
    }
    Ok(LimitsSource {
        cluster,
        path: req_path,
        authority,
        interval_seconds,
        timeout_ms,
    })
}

/// The largest USD amount a limit may have: the whole dollars of `u64::MAX` pico-USD
/// (18,446,744.07...). A round bound keeps the error message exact; counters and sums near it
/// saturate instead of wrapping, and no real budget comes close.
pub const MAX_LIMIT_USD: u64 = 18_446_744;

/// [`MAX_LIMIT_USD`] in pico-USD (evaluated at compile time, so it cannot overflow unseen).
const MAX_LIMIT_PICO: u64 = MAX_LIMIT_USD * 1_000_000_000_000;

/// Parses a USD amount exactly into pico-USD: a decimal string (`"12.50"`, `"2.5e3"`) or a
/// JSON number, at most 12 decimal places and at most [`MAX_LIMIT_USD`].
///
/// The text goes through the same reader as prices ([`parse_scaled_exact`]), so budgets and
/// prices accept one grammar. A JSON number reaches us as `serde_json`'s u64 or f64. An f64 is
/// re-read from its shortest round-trip decimal form ([`f64_text`]), which is the literal the
/// operator wrote whenever it has at most 15 significant digits (no arithmetic is done on the
/// float). Use a string for more.
pub fn parse_usd(v: &Value, field: &str) -> Result<PicoUsd, BudgetError> {
    // Keep the bound in step with MAX_LIMIT_USD (a test checks the text).
    const EXPECTED: &str =
        "a non-negative USD amount with at most 12 decimal places, at most 18446744 USD";
    const PICO_PER_USD: u32 = 12;
    let pico = match v {
        Value::String(s) => parse_scaled_exact(s, PICO_PER_USD).ok(),
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => parse_scaled_exact(&u.to_string(), PICO_PER_USD).ok(),
            (None, Some(f)) => parse_scaled_exact(f64_text(f).as_str(), PICO_PER_USD).ok(),
            (None, None) => None,
        },
        _ => None,
    };
    pico.filter(|p| *p <= MAX_LIMIT_PICO)
        .map(PicoUsd)
        .ok_or_else(|| invalid(field, EXPECTED))
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn invalid(field: &str, expected: &'static str) -> BudgetError {
    BudgetError::Invalid {
        field: field.to_string(),
        expected,
    }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, BudgetError> {
    v.as_object().ok_or_else(|| invalid(path, "an object"))
}

fn check_keys(map: &Map<String, Value>, path: &str, allowed: &[&str]) -> Result<(), BudgetError> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(BudgetError::UnknownField {
            field: join(path, k),
        }),
        None => Ok(()),
    }
}

fn opt_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, BudgetError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(invalid(&join(path, key), "a string")),
    }
}

fn positive(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<u64>, BudgetError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(invalid(&join(path, key), "a positive integer")),
        },
    }
}
