//! NDJSON framing (`stream::ndjson::NdjsonFramer`) and the bounded `RecordBuffer`.
//!
//! Checks, for arbitrary bytes and chunk splits:
//! - the records (concatenated `Data` pieces between `End`s) equal a reference model: split
//!   the body on `\n`, drop each line's leading `[ \t\r\n]`, skip lines left empty;
//! - whole and split feeding give the same records, and no `Data` piece is empty;
//! - `records()` counts them and `finish` closes an unterminated last line;
//! - a `RecordBuffer` with a small cap (picked by the selector) hands out each record that
//!   fits, reports `RecordTooLarge` for each one that does not, and never grows past the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenmeter::stream::eventstream::FrameError;
use tokenmeter::stream::ndjson::{NdjsonFramer, RecordBuffer, Segment};
use tokenmeter_fuzz::SplitInput;

type Buffered = Vec<Result<Vec<u8>, FrameError>>;

fn frame(chunks: &[&[u8]], cap: u32) -> (Vec<Vec<u8>>, Buffered, u64) {
    let mut framer = NdjsonFramer::new();
    let mut buffer = RecordBuffer::new(cap);
    let mut records = Vec::new();
    let mut buffered = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut on_segment = |seg: Segment<'_>, records: &mut Vec<Vec<u8>>, buffered: &mut Buffered| {
        match seg {
            Segment::Data(d) => {
                assert!(!d.is_empty(), "empty Data segment");
                current.get_or_insert_with(Vec::new).extend_from_slice(d);
            }
            Segment::End => records.push(current.take().expect("End without Data")),
        }
        if let Some(result) = buffer.push(seg) {
            buffered.push(result.map(<[u8]>::to_vec));
        }
        assert!(
            buffer.capacity() <= cap as usize,
            "record buffer above its cap"
        );
    };
    for chunk in chunks {
        for seg in framer.feed(chunk) {
            on_segment(seg, &mut records, &mut buffered);
        }
    }
    let closed_by_finish = framer.in_record();
    let last = framer.finish();
    assert_eq!(last.is_some(), closed_by_finish);
    assert!(!framer.in_record());
    if let Some(seg) = last {
        on_segment(seg, &mut records, &mut buffered);
    }
    (records, buffered, framer.records())
}

fn model(body: &[u8]) -> Vec<Vec<u8>> {
    body.split(|&b| b == b'\n')
        .map(|line| {
            let start = line
                .iter()
                .position(|b| !matches!(b, b' ' | b'\t' | b'\r'))
                .unwrap_or(line.len());
            &line[start..]
        })
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let input = SplitInput::parse(data);
    let cap = u32::from(input.selector) * 4;
    let whole = frame(&[input.body], cap);
    let split = frame(&input.chunks(), cap);
    assert_eq!(whole, split, "split feeding changed the result");

    let (records, buffered, count) = whole;
    assert_eq!(
        records,
        model(input.body),
        "records differ from the line model"
    );
    assert_eq!(count, records.len() as u64);
    let expected: Buffered = records
        .iter()
        .map(|r| {
            if r.len() as u64 <= u64::from(cap) {
                Ok(r.clone())
            } else {
                Err(FrameError::RecordTooLarge { max: cap })
            }
        })
        .collect();
    assert_eq!(
        buffered, expected,
        "RecordBuffer disagrees with the records"
    );
});
