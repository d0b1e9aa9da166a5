//! File contents by hash: an evictable cache in the store, backed by
//! recomputation from the file's own ops when the cache misses.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use vellum_journal::blob;
use vellum_journal::payload::{Action, Body};
use vellum_journal::replay::{Contents, apply_patch_strict};
use vellum_journal::store::{Batch, Ks, Store};
use vellum_journal::{ContentHash, Error, FileId, Journal, OpId, OrderKey, Result};

/// Effect records: the first byte says whether an Edit's patch was checked
/// good against its base.
pub const EFFECT_APPLIED: u8 = 0;
pub const EFFECT_NO_EFFECT: u8 = 1;
pub const PATCH_UNCHECKED: u8 = 0;
pub const PATCH_GOOD: u8 = 1;
pub const PATCH_BAD: u8 = 2;

/// FileOps key: file ‖ order key.
pub fn file_ops_key(file: &FileId, key: &OrderKey) -> Vec<u8> {
    let mut k = file.0.to_vec();
    k.extend_from_slice(&key.to_bytes());
    k
}

/// The body with `hash` that `file` had, from the cache or by replaying
/// the file's own ops from its creation.
pub fn body_of<S: Store>(journal: &Journal<S>, file: FileId, hash: ContentHash) -> Result<Body> {
    if let Some(b) = journal.store().get(Ks::Content, &hash.0)? {
        return Body::decode(&b);
    }
    recompute(journal, file, hash)
}

/// Writes the bytes of `body` to `out`, streaming blobs chunk by chunk.
pub fn write_body<S: Store>(
    journal: &Journal<S>,
    body: &Body,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    match body {
        Body::Text(t) => Ok(out.write_all(t.as_bytes())?),
        Body::Blob(b) => blob::read_blob(journal.store(), b, out),
    }
}

fn recompute<S: Store>(journal: &Journal<S>, file: FileId, wanted: ContentHash) -> Result<Body> {
    let mut keys = Vec::new();
    journal
        .store()
        .scan_prefix(Ks::FileOps, &file.0, &mut |k, _| {
            if let Some(key) = OrderKey::from_bytes(&k[32..]) {
                keys.push(key);
            }
            ControlFlow::Continue(())
        })?;
    let mut cur: Option<(ContentHash, Body)> = None;
    for key in keys {
        let env = journal.load_at(&key)?;
        let payload = journal.load_payload(&env)?;
        let next = match payload.action {
            Action::Create { body, .. }
            | Action::Replace { body, .. }
            | Action::Resolve { body, .. } => Some(body),
            Action::Edit {
                base,
                patch,
                result,
                ..
            } => match &cur {
                Some((h, Body::Text(t))) if *h == base => {
                    apply_patch_strict(t, &patch, &result).map(Body::Text)
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(body) = next {
            let h = body.hash();
            if h == wanted {
                return Ok(body);
            }
            cur = Some((h, body));
        }
    }
    Err(Error::Corrupt(format!(
        "content {} of file {} cannot be rebuilt from its ops",
        wanted.short(),
        file.short()
    )))
}

/// Contents for replay: reads through to the cache and the journal, and
/// keeps each file's newest content in memory until [`Cache::flush`]. Only
/// the newest matters: it is the base of the file's next edit.
pub struct Cache<'a, S: Store> {
    journal: &'a Journal<S>,
    current: HashMap<FileId, (ContentHash, Body)>,
    /// Files whose newest content is not yet in the store's cache.
    dirty: HashSet<FileId>,
    /// For dirty files: the cached version they had before.
    replaced: HashMap<FileId, ContentHash>,
    /// Trust recorded patch checks instead of applying patches again.
    trust_effects: bool,
    /// Edit ops whose patch this replay checked, and the verdict, when
    /// asked for by [`Cache::recording_checks`].
    pub checked: HashMap<OpId, bool>,
    record_checks: bool,
}

impl<'a, S: Store> Cache<'a, S> {
    pub fn new(journal: &'a Journal<S>, trust_effects: bool) -> Self {
        Cache {
            journal,
            current: HashMap::new(),
            dirty: HashSet::new(),
            replaced: HashMap::new(),
            trust_effects,
            checked: HashMap::new(),
            record_checks: false,
        }
    }

    /// Records each checked patch's verdict in [`Cache::checked`], for the
    /// caller to store as the op's effect.
    pub fn recording_checks(mut self) -> Self {
        self.record_checks = true;
        self
    }

    /// Adds the newest content of every file changed since the last flush
    /// to `batch` for the content cache, and drops the version each one
    /// replaced: old versions are rebuilt from the file's ops when asked
    /// for (a file sharing the dropped bytes rebuilds its own the same way).
    pub fn flush(&mut self, batch: &mut Batch) {
        for file in self.dirty.drain() {
            if let Some((hash, body)) = self.current.get(&file) {
                if let Some(old) = self.replaced.remove(&file)
                    && old != *hash
                {
                    batch.delete(Ks::Content, old.0.to_vec());
                }
                batch.put(Ks::Content, hash.0.to_vec(), body.encode());
            }
        }
    }

    /// Notes the version `file` had before this replay changed it.
    pub fn replacing(&mut self, file: FileId, old: ContentHash) {
        self.replaced.entry(file).or_insert(old);
    }

    /// Takes `file`'s content with `hash` out of the replay's memory, or
    /// reads it like [`Cache::body`].
    pub fn take(&mut self, file: FileId, hash: ContentHash) -> Result<Body> {
        match self.current.remove(&file) {
            Some((h, b)) if h == hash => Ok(b),
            _ => body_of(self.journal, file, hash),
        }
    }

    pub fn body(&mut self, file: FileId, hash: ContentHash) -> Result<Body> {
        if let Some((h, b)) = self.current.get(&file)
            && *h == hash
        {
            return Ok(b.clone());
        }
        body_of(self.journal, file, hash)
    }
}

impl<S: Store> Contents for Cache<'_, S> {
    fn text(&mut self, file: FileId, hash: ContentHash) -> Result<String> {
        match self.body(file, hash)? {
            Body::Text(t) => Ok(t),
            // The cache is keyed by content: the same bytes may have been
            // cached as a binary file's blob. Bytes are bytes.
            Body::Blob(b) => {
                let mut bytes = Vec::with_capacity(b.size as usize);
                vellum_journal::blob::read_blob(self.journal.store(), &b, &mut bytes)?;
                String::from_utf8(bytes)
                    .map_err(|_| Error::Corrupt(format!("content {} is not text", hash.short())))
            }
        }
    }

    fn put(&mut self, file: FileId, hash: ContentHash, body: &Body) -> Result<()> {
        if !self.trust_effects {
            self.current.insert(file, (hash, body.clone()));
            self.dirty.insert(file);
        }
        Ok(())
    }

    fn edit(
        &mut self,
        op: &OrderKey,
        file: FileId,
        base: ContentHash,
        patch: &str,
        result: ContentHash,
    ) -> Result<bool> {
        if self.trust_effects
            && let Some(rec) = self.journal.store().get(Ks::Effects, &op.to_bytes())?
            && rec.len() >= 2
            && rec[1] != PATCH_UNCHECKED
        {
            return Ok(rec[1] == PATCH_GOOD);
        }
        // Patch the in-memory newest version in place when it is the base;
        // that is the common case and saves a copy of the text.
        let out = match self.current.get(&file) {
            Some((h, Body::Text(t))) if *h == base => apply_patch_strict(t, patch, &result),
            _ => apply_patch_strict(&self.text(file, base)?, patch, &result),
        };
        let good = match out {
            Some(out) => {
                if !self.trust_effects {
                    self.current.insert(file, (result, Body::Text(out)));
                    self.dirty.insert(file);
                }
                true
            }
            None => false,
        };
        if self.record_checks {
            self.checked.insert(op.id, good);
        }
        Ok(good)
    }
}
