//! The hash index that makes model lookup O(1) per spelling tried.
//!
//! Resolution tries up to five spellings per request, and the table may hold thousands of
//! names after a LiteLLM import, so each try must be cheap. An open-addressing table of `u32`
//! key ids, hashed with FNV-1a, costs one pass over the id's bytes and usually one string
//! comparison. FNV has no random seed: std's `HashMap` would ask WASI for randomness at
//! start-up, and hash flooding is no concern for a table built from configuration.

/// Open addressing with linear probing; a slot holds `key id + 1`, 0 is empty.
#[derive(Debug, Clone, Default)]
pub struct NameIndex {
    slots: Vec<u32>,
}

fn fnv1a(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl NameIndex {
    /// Indexes `names`; a name's key id is its position. Later duplicates are not indexed.
    pub fn build<'a>(names: impl Iterator<Item = &'a str>) -> NameIndex {
        let all: Vec<&str> = names.collect();
        let capacity = all.len().saturating_mul(2).max(8).checked_next_power_of_two().unwrap_or(0);
        let mut index = NameIndex { slots: vec![0; capacity] };
        for (id, name) in all.iter().enumerate() {
            let Ok(id) = u32::try_from(id) else { break };
            if index.get(name, |k| all.get(k as usize).copied()).is_some() {
                continue;
            }
            index.place(name, id);
        }
        index
    }

    fn mask(&self) -> u64 {
        (self.slots.len() as u64).saturating_sub(1)
    }

    fn place(&mut self, name: &str, id: u32) {
        let mask = self.mask();
        let mut pos = fnv1a(name) & mask;
        for _ in 0..self.slots.len() {
            if let Some(slot) = self.slots.get_mut(pos as usize) {
                if *slot == 0 {
                    *slot = id.saturating_add(1);
                    return;
                }
            }
            pos = (pos + 1) & mask;
        }
    }

    /// The key id of `name`; `key` returns the name of a key id.
    pub fn get<'k>(&self, name: &str, key: impl Fn(u32) -> Option<&'k str>) -> Option<u32> {
        let mask = self.mask();
        let mut pos = fnv1a(name) & mask;
        for _ in 0..self.slots.len() {
            let slot = *self.slots.get(pos as usize)?;
            let id = slot.checked_sub(1)?;
            if key(id) == Some(name) {
                return Some(id);
            }
            pos = (pos + 1) & mask;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_name_and_nothing_else() {
        let names: Vec<String> = (0..1000).map(|i| format!("model-{i}")).collect();
        let index = NameIndex::build(names.iter().map(String::as_str));
        let key = |id: u32| names.get(id as usize).map(String::as_str);
        for (i, name) in names.iter().enumerate() {
            assert_eq!(index.get(name, key), Some(i as u32));
        }
        for missing in ["model-1000", "", "model-", "MODEL-1"] {
            assert_eq!(index.get(missing, key), None);
        }
    }

    #[test]
    fn empty_index_finds_nothing() {
        let index = NameIndex::default();
        assert_eq!(index.get("x", |_| Some("x")), None);
        let built = NameIndex::build(core::iter::empty());
        assert_eq!(built.get("x", |_| Some("x")), None);
    }

    #[test]
    fn first_duplicate_wins() {
        let names = ["a", "b", "a"];
        let index = NameIndex::build(names.iter().copied());
        assert_eq!(index.get("a", |id| names.get(id as usize).copied()), Some(0));
    }
}
