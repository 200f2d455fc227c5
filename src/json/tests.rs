//! Scanner behaviour at the edges: escapes, numbers and literals split anywhere, hostile
//! nesting and sizes, and malformed input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::*;

/// Records every scalar as `path=value`, capturing every string (and, with `numbers`, the
/// text of every number, rendered `#text`).
#[derive(Default, Debug, PartialEq)]
struct Record {
    items: Vec<String>,
    ends: u64,
    numbers: bool,
}

fn render(path: &Path<'_>) -> String {
    let mut out = String::new();
    for depth in 0..path.len() {
        match path.get(depth).unwrap() {
            Segment::Key(k) => {
                out.push('.');
                out.push_str(&String::from_utf8_lossy(k));
            }
            Segment::LongKey => out.push_str(".<long>"),
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

impl Visitor for Record {
    fn wants_string(&mut self, _: Interest, _: &Path<'_>) -> bool {
        true
    }
    fn wants_number_text(&mut self, _: Interest, _: &Path<'_>) -> bool {
        self.numbers
    }
    fn scalar(&mut self, _: Interest, path: &Path<'_>, value: Scalar<'_>) {
        let v = match value {
            Scalar::Null => "null".to_string(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Number(Number::Integer(n)) => n.to_string(),
            Scalar::Number(Number::Other) => "<num>".to_string(),
            Scalar::Number(Number::Text(t)) => format!("#{t}"),
            Scalar::String(s) => {
                format!(
                    "{:?}{}/{}",
                    s.text.unwrap(),
                    if s.truncated { "~" } else { "" },
                    s.raw_len
                )
            }
        };
        self.items.push(format!("{}={v}", render(path)));
    }
    fn value_end(&mut self) {
        self.ends += 1;
    }
}

fn scan_chunks(chunks: &[&[u8]], sequence: bool) -> (Record, Result<(), JsonError>) {
    scan_with(chunks, sequence, false)
}

fn scan_with(
    chunks: &[&[u8]],
    sequence: bool,
    numbers: bool,
) -> (Record, Result<(), JsonError>) {
    let mut scanner = if sequence {
        Scanner::sequence()
    } else {
        Scanner::new()
    };
    let mut record = Record {
        numbers,
        ..Record::default()
    };
    for chunk in chunks {
        if let Err(e) = scanner.feed(chunk, &mut record) {
            return (record, Err(e));
        }
    }
    let result = scanner.finish(&mut record);
    (record, result)
}

fn scan(body: &[u8]) -> (Record, Result<(), JsonError>) {
    scan_chunks(&[body], false)
}

fn items(body: &str) -> Vec<String> {
    let (record, result) = scan(body.as_bytes());
    assert_eq!(result, Ok(()), "{body}");
    record.items
}

/// Every two-chunk split and the byte-by-byte feed agree with the whole-body scan.
fn assert_split_invariant(body: &[u8], sequence: bool) {
    let whole = scan_chunks(&[body], sequence);
    for cut in 0..=body.len() {
        let (a, b) = body.split_at(cut);
        assert_eq!(
            scan_chunks(&[a, b], sequence),
            whole,
            "cut at {cut} of {:?}",
            String::from_utf8_lossy(body)
        );
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(scan_chunks(&bytes, sequence), whole);
}

#[test]
fn reports_scalars_with_their_paths() {
    assert_eq!(
        items(r#"{"a":{"b":[1,true,null,"x",{"c":false}]},"d":-2.5e3}"#),
        vec![
            ".a.b[0]=1",
            ".a.b[1]=true",
            ".a.b[2]=null",
            ".a.b[3]=\"x\"/1",
            ".a.b[4].c=false",
            ".d=<num>"
        ]
    );
}

#[test]
fn pretty_printed_whitespace_is_ignored() {
    assert_eq!(
        items(" {\n\t\"a\" :\r\n [ 1 , 2 ] \n} \n"),
        vec![".a[0]=1", ".a[1]=2"]
    );
}

#[test]
fn string_escapes_are_decoded() {
    assert_eq!(
        items(r#"["a\"b\\c\/d\b\f\n\r\t"]"#),
        vec![r#"[0]="a\"b\\c/d\u{8}\u{c}\n\r\t"/20"#]
    );
}

#[test]
fn unicode_escapes_and_surrogate_pairs_are_decoded() {
    assert_eq!(
        items(r#"["\u00e9\u20AC\ud83c\udf24"]"#),
        vec!["[0]=\"é€🌤\"/24"]
    );
}

#[test]
fn lone_surrogates_become_replacement_characters() {
    assert_eq!(
        items(r#"["\ud83c", "\udf24x", "\ud83cx", "\ud83c\n", "\ud83c\u0041"]"#),
        vec![
            "[0]=\"\u{fffd}\"/6",
            "[1]=\"\u{fffd}x\"/7",
            "[2]=\"\u{fffd}x\"/7",
            "[3]=\"\u{fffd}\\n\"/8",
            "[4]=\"\u{fffd}A\"/12",
        ]
    );
}

#[test]
fn escaped_keys_match_like_plain_keys() {
    assert_eq!(
        items(r#"{"mo\u0064el":"m","a\"b":1}"#),
        vec![".model=\"m\"/1", ".a\"b=1"]
    );
}

#[test]
fn integers_saturate_and_other_numbers_are_not_counts() {
    assert_eq!(
        items("[0,7,18446744073709551615,18446744073709551616,99999999999999999999999999999,-1,-0,1.5,1e3,2E-2,0.0]"),
        vec![
            "[0]=0",
            "[1]=7",
            "[2]=18446744073709551615",
            "[3]=18446744073709551615",
            "[4]=18446744073709551615",
            "[5]=<num>",
            "[6]=<num>",
            "[7]=<num>",
            "[8]=<num>",
            "[9]=<num>",
            "[10]=<num>",
        ]
    );
}

/// Scans with number text captured; asserts the body is accepted.
fn number_items(body: &str) -> Vec<String> {
    let (record, result) = scan_with(&[body.as_bytes()], false, true);
    assert_eq!(result, Ok(()), "{body}");
    record.items
}

#[test]
fn number_text_is_reported_as_written_when_asked() {
    // Inside an object (the fast member path) and an array (the general path) alike.
    assert_eq!(
        number_items(r#"{"usage":{"cost":1.2e-05,"prompt_tokens":194,"neg":-0.5,"z":0}}"#),
        vec![
            ".usage.cost=#1.2e-05",
            ".usage.prompt_tokens=#194",
            ".usage.neg=#-0.5",
            ".usage.z=#0",
        ]
    );
    assert_eq!(
        number_items("[0.95,-0,1E+3,18446744073709551616]"),
        vec!["[0]=#0.95", "[1]=#-0", "[2]=#1E+3", "[3]=#18446744073709551616"]
    );
    assert_eq!(number_items("0.000093"), vec!["=#0.000093"]);
}

#[test]
fn number_text_longer_than_the_bound_is_reported_without_text() {
    let fits = format!("0.{}", "1".repeat(MAX_NUMBER_BYTES - 2));
    let long = format!("0.{}", "1".repeat(MAX_NUMBER_BYTES - 1));
    let digits = "9".repeat(MAX_NUMBER_BYTES + 1);
    for body in [
        format!(r#"{{"a":{fits},"b":{long},"c":{digits}}}"#),
        format!("[{fits},{long},{digits}]"),
    ] {
        let items = number_items(&body);
        assert_eq!(items.len(), 3, "{body}");
        assert!(items[0].ends_with(&format!("=#{fits}")), "{items:?}");
        assert!(items[1].ends_with("=<num>"), "{items:?}");
        assert!(items[2].ends_with(&format!("={}", u64::MAX)), "{items:?}");
    }
}

#[test]
fn number_text_survives_every_chunk_split() {
    let long = format!("1.{}e-7", "2".repeat(MAX_NUMBER_BYTES));
    let body = format!(
        r#"{{"usage":{{"cost":1.2e-05,"n":-12.50E+2,"t":42,"l":{long}}},"x":[3.25,7]}}"#
    );
    let body = body.as_bytes();
    let whole = scan_with(&[body], false, true);
    assert_eq!(whole.1, Ok(()));
    assert!(whole.0.items.contains(&".usage.cost=#1.2e-05".to_string()));
    assert!(whole.0.items.contains(&".usage.l=<num>".to_string()));
    for cut in 0..=body.len() {
        let (a, b) = body.split_at(cut);
        assert_eq!(scan_with(&[a, b], false, true), whole, "cut at {cut}");
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(scan_with(&bytes, false, true), whole);
}

#[test]
fn a_top_level_number_ends_at_finish() {
    assert_eq!(items("42"), vec!["=42"]);
    assert_eq!(items("42 "), vec!["=42"]);
}

#[test]
fn malformed_numbers_are_rejected() {
    for body in [
        "[01]", "[1.]", "[-]", "[1e]", "[--1]", "[.5]", "[+1]", "[1.e3]", "[1e+]", "[0x1]",
    ] {
        assert!(
            matches!(
                scan(body.as_bytes()).1,
                Err(JsonError::InvalidNumber { .. } | JsonError::UnexpectedByte { .. })
            ),
            "{body}"
        );
    }
}

#[test]
fn malformed_structure_is_rejected_with_an_offset() {
    let cases: &[(&str, JsonError)] = &[
        (
            r#"{"a" 1}"#,
            JsonError::UnexpectedByte {
                byte: b'1',
                offset: 5,
            },
        ),
        (
            "[1,]",
            JsonError::UnexpectedByte {
                byte: b']',
                offset: 3,
            },
        ),
        (
            r#"{"a":1,}"#,
            JsonError::UnexpectedByte {
                byte: b'}',
                offset: 7,
            },
        ),
        (
            "{]",
            JsonError::UnexpectedByte {
                byte: b']',
                offset: 1,
            },
        ),
        (
            "[}",
            JsonError::UnexpectedByte {
                byte: b'}',
                offset: 1,
            },
        ),
        (
            "{} x",
            JsonError::UnexpectedByte {
                byte: b'x',
                offset: 3,
            },
        ),
        (
            "{}{}",
            JsonError::UnexpectedByte {
                byte: b'{',
                offset: 2,
            },
        ),
        (
            "[tru]",
            JsonError::UnexpectedByte {
                byte: b']',
                offset: 4,
            },
        ),
        ("[nul", JsonError::Truncated),
        (r#"["\x"]"#, JsonError::InvalidEscape { offset: 3 }),
        (r#"["\u12G4"]"#, JsonError::InvalidEscape { offset: 6 }),
        (
            "{1:2}",
            JsonError::UnexpectedByte {
                byte: b'1',
                offset: 1,
            },
        ),
        (
            "<html>",
            JsonError::UnexpectedByte {
                byte: b'<',
                offset: 0,
            },
        ),
    ];
    for (body, error) in cases {
        assert_eq!(scan(body.as_bytes()).1, Err(*error), "{body}");
    }
}

#[test]
fn an_error_sticks() {
    let mut scanner = Scanner::new();
    let mut record = Record::default();
    let first = scanner.feed(b"[x", &mut record);
    assert!(first.is_err());
    assert_eq!(scanner.feed(b"1]", &mut record), first);
    assert_eq!(scanner.finish(&mut record), first);
    assert_eq!(scanner.error(), first.err());
    scanner.reset();
    assert_eq!(scanner.feed(b"[1]", &mut record), Ok(()));
    assert_eq!(scanner.finish(&mut record), Ok(()));
}

#[test]
fn truncated_and_empty_inputs_are_told_apart() {
    assert_eq!(scan(b"").1, Err(JsonError::Empty));
    assert_eq!(scan(b" \n ").1, Err(JsonError::Empty));
    for body in [
        r#"{"a":"#,
        r#"{"a":"b"#,
        "[1,",
        r#"{"a"#,
        "[\"\\u12",
        "-",
        "{",
    ] {
        assert_eq!(scan(body.as_bytes()).1, Err(JsonError::Truncated), "{body}");
    }
}

#[test]
fn a_sequence_reports_each_value_end() {
    let (record, result) = scan_chunks(&[b"{\"a\":1}\n{\"a\":2}\n 3 [4]"], true);
    assert_eq!(result, Ok(()));
    assert_eq!(record.items, vec![".a=1", ".a=2", "=3", "[0]=4"]);
    assert_eq!(record.ends, 4);
}

#[test]
fn nesting_100_000_deep_is_counted_not_stacked() {
    let depth = 100_000;
    let mut body = String::from(r#"{"a":1,"deep":"#);
    body.push_str(&"[{\"k\":".repeat(depth / 2));
    body.push_str("\"x\"");
    body.push_str(&"}]".repeat(depth / 2));
    body.push_str(r#","b":2}"#);
    let (record, result) = scan(body.as_bytes());
    assert_eq!(result, Ok(()));
    // Values nested past MAX_TRACKED_DEPTH are skipped, and scanning resumes after them.
    assert_eq!(record.items.first().unwrap(), ".a=1");
    assert_eq!(record.items.last().unwrap(), ".b=2");
    assert!(record.items.iter().all(|i| !i.contains("\"x\"")));

    let unclosed = "[".repeat(depth);
    assert_eq!(scan(unclosed.as_bytes()).1, Err(JsonError::Truncated));
}

#[test]
fn values_at_the_tracked_depth_limit_are_reported() {
    let open = "[".repeat(MAX_TRACKED_DEPTH);
    let close = "]".repeat(MAX_TRACKED_DEPTH);
    let (record, result) = scan(format!("{open}7{close}").as_bytes());
    assert_eq!(result, Ok(()));
    assert_eq!(
        record.items,
        vec![format!("{}=7", "[0]".repeat(MAX_TRACKED_DEPTH))]
    );
    let (record, result) = scan(format!("[{open}7{close}]").as_bytes());
    assert_eq!(result, Ok(()));
    assert!(record.items.is_empty());
}

#[test]
fn long_keys_match_nothing_and_long_strings_are_cut_at_a_character() {
    let key = "k".repeat(MAX_KEY_BYTES + 1);
    assert_eq!(items(&format!(r#"{{"{key}":1}}"#)), vec![".<long>=1"]);
    let exact = "k".repeat(MAX_KEY_BYTES);
    assert_eq!(
        items(&format!(r#"{{"{exact}":1}}"#)),
        vec![format!(".{exact}=1")]
    );

    // 1 + 2*200 bytes: the cap (256) falls inside an 'é', which is dropped.
    let long = format!("a{}", "é".repeat(200));
    let (record, _) = scan(format!(r#"["{long}"]"#).as_bytes());
    let kept = format!("a{}", "é".repeat(127));
    assert_eq!(record.items, vec![format!("[0]={kept:?}~/401")]);
}

#[test]
fn invalid_utf8_in_a_captured_string_is_repaired_and_elsewhere_ignored() {
    let (record, result) = scan(b"{\"m\":\"gpt\xff\xfe\",\"x\xc3\":[\"\xe2\x82\"]}");
    assert_eq!(result, Ok(()));
    assert_eq!(record.items[0], ".m=\"gpt\u{fffd}\u{fffd}\"/5");
    assert_eq!(record.items.len(), 2);
}

#[test]
fn the_heap_stays_bounded() {
    let mut scanner = Scanner::new();
    let mut record = Record::default();
    scanner.feed(b"[", &mut record).unwrap();
    for _ in 0..1000 {
        let mut s = b"\"".to_vec();
        s.extend(std::iter::repeat_n(0xffu8, 10_000));
        s.extend_from_slice(b"\",");
        scanner.feed(&s, &mut record).unwrap();
    }
    assert!(
        scanner.heap_bytes() <= 4 * MAX_STRING_BYTES,
        "{}",
        scanner.heap_bytes()
    );
}

/// Reports only `keep.*` and counts how often it was asked about keys.
struct Selective {
    seen: Vec<String>,
    keys: u64,
}

impl Visitor for Selective {
    fn key(&mut self, parent: Interest, depth: usize, key: Option<&[u8]>) -> Interest {
        self.keys += 1;
        if depth == 0 && key != Some(b"keep") {
            0
        } else {
            parent
        }
    }
    fn scalar(&mut self, _: Interest, path: &Path<'_>, _: Scalar<'_>) {
        self.seen.push(render(path));
    }
}

#[test]
fn uninteresting_subtrees_are_skipped_unread() {
    let body = br#"{"skip":{"a":[1,{"b":"}]\"{["}],"c":2},"keep":{"x":1,"y":[true]},"skip2":"s","also":[[]]}"#;
    let mut scanner = Scanner::new();
    let mut v = Selective {
        seen: Vec::new(),
        keys: 0,
    };
    scanner.feed(body, &mut v).unwrap();
    scanner.finish(&mut v).unwrap();
    assert_eq!(v.seen, vec![".keep.x", ".keep.y[0]"]);
    // Keys inside skipped values were never looked at: skip, keep, x, y, skip2, also.
    assert_eq!(v.keys, 6);
}

#[test]
fn path_patterns() {
    struct Check(Vec<(bool, bool)>);
    impl Visitor for Check {
        fn scalar(&mut self, _: Interest, path: &Path<'_>, _: Scalar<'_>) {
            self.0.push((
                path.matches(&[
                    Step::Key("choices"),
                    Step::AnyIndex,
                    Step::Key("finish_reason"),
                ]),
                path.starts_with(&[Step::Key("choices")]),
            ));
        }
    }
    let mut v = Check(Vec::new());
    let mut s = Scanner::new();
    s.feed(
        br#"{"choices":[{"finish_reason":"stop","x":{"finish_reason":1}}],"finish_reason":2}"#,
        &mut v,
    )
    .unwrap();
    assert_eq!(v.0, vec![(true, true), (false, true), (false, false)]);
}

#[test]
fn every_split_point_gives_the_same_scalars() {
    let docs: &[&[u8]] = &[
        br#"{"id":"chatcmpl-1","usage":{"prompt_tokens":18446744073709551615,"completion_tokens":286},"x":[true,false,null,-1.5e-3]}"#,
        br#"{"k\u00e9y":"\ud83c\udf24 \"q\" \\ \/","n":[0,10,-0.0,1E+2]}"#,
        b"{\"a\":\"\xc3\xa9\xe2\x82\xac\",\"b\" : [ ] , \"c\":{ } }",
        br#"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],1]"#,
        b"{\"bad\":01}",
        b"[\"\\q\"]",
        b"{\"a\":1}",
    ];
    for doc in docs {
        assert_split_invariant(doc, false);
    }
    // Whole-chunk scans take the fast member path, byte-by-byte scans the general one:
    // the invariant is what keeps them equal, on every kind of member value.
    let long = "x".repeat(MAX_STRING_BYTES + 10);
    let members = format!(
        "{{\"s\":\"plain\",\"e\":\"a\\nb\",\"l\":\"{long}\",\"u\":\"\\u00e9\",\"n\":-0,\"i\":12,\"f\":1.5e-3, \"t\" : true ,\"fa\":false,\"nu\":null,\"o\":{{\"k\":[1]}},\"a\":[\"x\"],\"last\":7}}"
    );
    assert_split_invariant(members.as_bytes(), false);
    assert_split_invariant(b"{\"a\":\"\xff\xfe\",\"b\":1}", false);
    for bad in [
        &b"{\"a\":tru,\"b\":1}"[..],
        b"{\"a\":1.,\"b\":1}",
        b"{\"a\":-,\"b\":1}",
        b"{\"a\":1 2}",
        b"{\"a\":\"x\" \"b\":1}",
        b"{\"a\":\"\\q\",\"b\":1}",
        b"{\"a\":1,,\"b\":1}",
        b"{\"a\":1,\"b\"1}",
    ] {
        assert_split_invariant(bad, false);
        assert!(scan(bad).1.is_err(), "{}", String::from_utf8_lossy(bad));
    }
    assert_split_invariant(b"{\"a\":1} 22 [3]\n\"s\" true", true);
}

#[test]
fn the_word_at_a_time_string_search_agrees_with_memchr() {
    // Every position of a quote or backslash (or none) in strings of every length up to 80,
    // over bytes that stress the borrow trick (0x21 = '"' + 1, 0x5d = '\\' + 1, 0xa2, 0xdc).
    let fillers = [b'a', 0x21, 0x5d, 0xa2, 0xdc, 0x00, 0xff];
    for len in 0..80 {
        for filler in fillers {
            for stop in [None, Some(b'"'), Some(b'\\')] {
                for at in 0..len.max(1) {
                    let mut s = vec![filler; len];
                    if let (Some(c), Some(slot)) = (stop, s.get_mut(at)) {
                        *slot = c;
                    }
                    let want = memchr::memchr2(b'"', b'\\', &s);
                    assert_eq!(
                        super::scanner::string_stop(&s),
                        want,
                        "len {len} filler {filler:#x} at {at}"
                    );
                }
            }
        }
    }
}
