//! Model id spellings -> the names the price table is keyed by.
//!
//! The same model reaches the filter under many ids: `gpt-4o-2024-08-06`,
//! `claude-sonnet-4-20250514`, Bedrock's `us.anthropic.claude-sonnet-4-20250514-v1:0` or an ARN
//! ending in it, Vertex's `claude-sonnet-4@20250514` or `publishers/anthropic/models/...`,
//! Gemini's `models/gemini-2.5-pro`, router prefixes such as `openai/gpt-4o`. Resolution peels
//! these wrappers off one at a time and looks the id up after every step, so the most specific
//! spelling in the table wins (`gpt-4o-2024-05-13` has its own price) and a longer name is never
//! cut down to a shorter one (`gpt-4o-mini` is only ever looked up as itself; nothing here strips
//! a word, only dates, versions and wrappers). There is no prefix matching: an id the steps do not
//! reduce to a known name is unpriced rather than priced as a lookalike.
//!
//! It runs per request, so every step is a `&str` slice of the input: no allocation, no regex.

/// Calls `lookup` on each candidate spelling of `model`, most specific first, and returns the
/// first hit.
pub fn first_match<T>(model: &str, mut lookup: impl FnMut(&str) -> Option<T>) -> Option<T> {
    let mut current = model.trim();
    if let Some(hit) = lookup(current) {
        return Some(hit);
    }
    let steps: [fn(&str) -> &str; 4] = [strip_path, strip_vertex_version, strip_bedrock, strip_date];
    for step in steps {
        let next = step(current);
        if next.len() != current.len() {
            current = next;
            if let Some(hit) = lookup(current) {
                return Some(hit);
            }
        }
    }
    None
}

/// `openai/gpt-4o`, `models/gemini-2.5-pro`, `publishers/anthropic/models/claude-...`,
/// `arn:aws:bedrock:...:inference-profile/us.anthropic.claude-...` -> the last path segment.
fn strip_path(id: &str) -> &str {
    match id.rfind('/') {
        Some(slash) => id.get(slash + 1..).unwrap_or(id),
        None => id,
    }
}

/// Vertex AI pins Claude versions as `claude-sonnet-4@20250514`.
fn strip_vertex_version(id: &str) -> &str {
    match id.find('@') {
        Some(at) => id.get(..at).unwrap_or(id),
        None => id,
    }
}

/// Bedrock geographic inference-profile prefixes.
const BEDROCK_REGIONS: [&str; 8] = ["us.", "us-gov.", "eu.", "apac.", "jp.", "au.", "ca.", "global."];
/// Bedrock model-provider prefixes of vendors this table prices.
const BEDROCK_VENDORS: [&str; 2] = ["anthropic.", "openai."];

/// `us.anthropic.claude-sonnet-4-20250514-v1:0` -> `claude-sonnet-4-20250514`.
fn strip_bedrock(id: &str) -> &str {
    let mut s = id;
    for region in BEDROCK_REGIONS {
        if let Some(rest) = s.strip_prefix(region) {
            s = rest;
            break;
        }
    }
    let mut vendor_found = false;
    for vendor in BEDROCK_VENDORS {
        if let Some(rest) = s.strip_prefix(vendor) {
            s = rest;
            vendor_found = true;
            break;
        }
    }
    if !vendor_found {
        // A region prefix alone is not Bedrock (`eu.` could start anything); keep the id.
        return id;
    }
    // `:0` throughput suffix, then `-v1` version.
    if let Some((head, tail)) = s.rsplit_once(':') {
        if is_digits(tail) {
            s = head;
        }
    }
    // The last `v`, then its `-`: the same cut as `rsplit_once("-v")` when the tail is all
    // digits (a digit tail holds no `v`), without the reverse string searcher's code.
    if let Some((head, tail)) = s.rsplit_once('v') {
        if let (Some(head), true) = (head.strip_suffix('-'), is_digits(tail)) {
            s = head;
        }
    }
    s
}

/// Snapshot suffixes: `-2024-08-06` (OpenAI), `-20250514` (Anthropic), `-latest`, and Vertex's
/// three-digit stable versions (`gemini-2.0-flash-001`).
///
/// OpenAI's older four-digit snapshots (`gpt-3.5-turbo-0613`, `gpt-4-1106-preview`) are NOT
/// stripped: several were priced differently from the model that now carries the name.
fn strip_date(id: &str) -> &str {
    let bytes = id.as_bytes();
    let len = bytes.len();
    // -YYYY-MM-DD
    if len > 11 {
        if let Some(tail) = bytes.get(len - 11..) {
            if matches!(tail, [b'-', y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2]
                if [y1, y2, y3, y4, m1, m2, d1, d2].iter().all(|c| c.is_ascii_digit()))
            {
                return id.get(..len - 11).unwrap_or(id);
            }
        }
    }
    // -YYYYMMDD
    if let Some((head, tail)) = id.rsplit_once('-') {
        let date_like = tail.len() == 8 && is_digits(tail) && tail.starts_with("20");
        let stable_version = tail.len() == 3 && is_digits(tail);
        if (date_like || stable_version || tail == "latest") && !head.is_empty() {
            return head;
        }
    }
    id
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spellings(model: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let _ = first_match(model, |c| {
            seen.push(c.to_owned());
            None::<()>
        });
        seen
    }

    #[test]
    fn dates_are_stripped_last() {
        assert_eq!(spellings("gpt-4o-2024-08-06"), ["gpt-4o-2024-08-06", "gpt-4o"]);
        assert_eq!(spellings("claude-sonnet-4-20250514"), ["claude-sonnet-4-20250514", "claude-sonnet-4"]);
        assert_eq!(spellings("claude-3-5-haiku-latest"), ["claude-3-5-haiku-latest", "claude-3-5-haiku"]);
        assert_eq!(spellings("gemini-2.0-flash-001"), ["gemini-2.0-flash-001", "gemini-2.0-flash"]);
    }

    #[test]
    fn bedrock_ids_peel_region_vendor_version_then_date() {
        assert_eq!(
            spellings("arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-sonnet-4-20250514-v1:0"),
            [
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-sonnet-4-20250514-v1:0",
                "eu.anthropic.claude-sonnet-4-20250514-v1:0",
                "claude-sonnet-4-20250514",
                "claude-sonnet-4",
            ]
        );
    }

    #[test]
    fn words_are_never_stripped() {
        assert_eq!(spellings("gpt-4o-mini"), ["gpt-4o-mini"]);
        assert_eq!(spellings("gpt-4.1-mini"), ["gpt-4.1-mini"]);
        assert_eq!(spellings("gpt-3.5-turbo-0613"), ["gpt-3.5-turbo-0613"]);
        assert_eq!(spellings("eu.mistral-large"), ["eu.mistral-large"]);
        assert_eq!(spellings("ft:gpt-4o-mini-2024-07-18:acme::abc123"), ["ft:gpt-4o-mini-2024-07-18:acme::abc123"]);
    }

    #[test]
    fn degenerate_ids_do_not_panic() {
        for id in ["", "-", "/", "@", "-latest", "-20250514", "a/", "us.anthropic.", "us.anthropic.-v1:0", "é-2024-08-06"] {
            let _ = spellings(id);
        }
        assert_eq!(spellings("-latest"), ["-latest"]);
    }

    #[test]
    fn bedrock_version_cut_matches_rsplit_once_on_the_string() {
        // The old form: cut at the last "-v" when all digits follow.
        fn by_str(s: &str) -> &str {
            match s.rsplit_once("-v") {
                Some((head, tail)) if is_digits(tail) => head,
                _ => s,
            }
        }
        for tail in ["m-v1", "m-v12", "m-v", "m-v1v2", "m-vx", "mv1", "m--v1", "m-v1-v2", "m-v-v3", "v1", "-v1", "m-v1a"] {
            let id = format!("anthropic.{tail}");
            assert_eq!(strip_bedrock(&id), by_str(tail), "{id}");
        }
    }
}
