//! File contents by hash: an evictable cache in the store, backed by
//! rebuilding a version from the file's own ops when the cache misses.
//!
//! A version is defined by an op set: `file`'s text in the replay of the
//! ops of a version vector (DESIGN §4). Only the file's own ops decide its
//! text, so a rebuild replays just those ([`content_in`]), merges included:
//! an edit made against an older version is merged again with the base
//! that the replay of its causal past gives.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::ControlFlow;

use vellum_journal::blob;
use vellum_journal::payload::{Action, Body};
use vellum_journal::replay::{
    self, Contents, EditOutcome, ReplayOp, TextChange, VaultState, apply_patch_strict, change_text,
};
use vellum_journal::store::{Batch, Durability, Ks, Store};
use vellum_journal::{ContentHash, Error, FileId, Journal, OpId, OrderKey, Result, VersionVector};

/// Effect records (`Ks::Effects`): the first byte says whether the op had
/// an effect; then, for an Edit or text Replace, what it did to the text
/// ([`EditOutcome::to_record`], or [`OUTCOME_NONE`]); for no effect, the
/// reason in UTF-8.
pub const EFFECT_APPLIED: u8 = 0;
pub const EFFECT_NO_EFFECT: u8 = 1;
/// No text outcome recorded (not an Edit or text Replace).
pub const OUTCOME_NONE: u8 = 0;

/// FileOps key: file ‖ order key.
pub fn file_ops_key(file: &FileId, key: &OrderKey) -> Vec<u8> {
    let mut k = file.0.to_vec();
    k.extend_from_slice(&key.to_bytes());
    k
}

/// The body with `hash` that `file` has in the replay of the ops in `at`:
/// from the cache, or by replaying the file's own ops in `at`.
pub fn body_of<S: Store>(
    journal: &Journal<S>,
    file: FileId,
    hash: ContentHash,
    at: &VersionVector,
) -> Result<Body> {
    if let Some(b) = journal.store().get(Ks::Content, &hash.0)? {
        return Body::decode(&b);
    }
    match content_in(journal, file, at, None)? {
        Some(body) if body.hash() == hash => Ok(body),
        _ => find_version(journal, file, hash),
    }
}

/// Any version of `file` with `hash`, wherever it is in the file's history:
/// the file as each of its ops left it in that op's own view (its causal
/// past and itself), newest first. For a version that is neither cached
/// nor the file's content at a known point (what the disk last had, when
/// the journal has moved on).
pub fn find_version<S: Store>(
    journal: &Journal<S>,
    file: FileId,
    hash: ContentHash,
) -> Result<Body> {
    if hash == ContentHash::of(b"") {
        return Ok(Body::Text(String::new()));
    }
    let mut keys = Vec::new();
    journal
        .store()
        .scan_prefix(Ks::FileOps, &file.0, &mut |k, _| {
            keys.extend(OrderKey::from_bytes(&k[32..]));
            ControlFlow::Continue(())
        })?;
    for key in keys.iter().rev() {
        let seq = journal.seq_at(key)?;
        let mut view = journal.causal_past(&key.author, seq, &key.id)?;
        journal.add_to(&mut view, &key.author, seq, &key.id)?;
        if let Some(b) = content_in(journal, file, &view, None)?
            && b.hash() == hash
        {
            return Ok(b);
        }
    }
    Err(Error::Corrupt(format!(
        "content {} of file {} cannot be rebuilt from its ops",
        hash.short(),
        file.short()
    )))
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

/// `file`'s body in the replay of the ops in `set` that sort before
/// `before` (all of them for `None`), or `None` if the file does not exist
/// there. Replays only the file's own ops, with the same rules as the whole
/// replay ([`replay::apply`]).
pub fn content_in<S: Store>(
    journal: &Journal<S>,
    file: FileId,
    set: &VersionVector,
    before: Option<&OrderKey>,
) -> Result<Option<Body>> {
    Ok(replay_file(journal, file, set, before)?.and_then(|(exists, body)| exists.then_some(body)))
}

/// Like [`content_in`], but a deleted file gives the content it had when
/// it was deleted (an edit that brings it back is made on that), with
/// `false`.
fn replay_file<S: Store>(
    journal: &Journal<S>,
    file: FileId,
    set: &VersionVector,
    before: Option<&OrderKey>,
) -> Result<Option<(bool, Body)>> {
    replay_file_routed(journal, file, set, before, None)
}

/// How the replay asking for a rebuild routed ops into other files. Up to
/// `start` (where it began), its starting state's aliases say which
/// Creates joined the file; after it, only the ops it `routed` there. The
/// index's routings are the head's, which another op set may not share.
struct Routes<'a> {
    start: Option<&'a OrderKey>,
    aliases: &'a [FileId],
    routed: Option<&'a BTreeSet<OrderKey>>,
}

/// [`replay_file`], with the routings of `routes` instead of the index's
/// where given (a replay of another op set may route differently).
fn replay_file_routed<S: Store>(
    journal: &Journal<S>,
    file: FileId,
    set: &VersionVector,
    before: Option<&OrderKey>,
    routes: Option<&Routes<'_>>,
) -> Result<Option<(bool, Body)>> {
    let mut keys = Vec::new();
    journal
        .store()
        .scan_prefix(Ks::FileOps, &file.0, &mut |k, _| {
            match OrderKey::from_bytes(&k[32..]) {
                Some(key) if before.is_none_or(|b| key < *b) => keys.push(key),
                Some(_) => return ControlFlow::Break(()),
                None => {}
            }
            ControlFlow::Continue(())
        })?;
    if let Some(r) = routes {
        // The aliases' own ops up to the start (later ones are in `routed`).
        for alias in r.aliases {
            journal
                .store()
                .scan_prefix(Ks::FileOps, &alias.0, &mut |k, _| {
                    if let Some(key) = OrderKey::from_bytes(&k[32..])
                        && r.start.is_some_and(|s| key <= *s)
                        && before.is_none_or(|b| key < *b)
                    {
                        keys.push(key);
                    }
                    ControlFlow::Continue(())
                })?;
        }
        keys.extend(
            r.routed
                .into_iter()
                .flatten()
                .filter(|k| before.is_none_or(|b| *k < b))
                .copied(),
        );
        keys.sort();
        keys.dedup();
    }
    let disputes = journal.disputes(set)?;
    let mut state = VaultState::default();
    let mut own = FileReplay {
        journal,
        set,
        newest: HashMap::new(),
    };
    for key in keys {
        let (seq, env) = journal.load_at_seq(&key)?;
        if !journal.includes(set, &key.author, seq, &key.id)? {
            continue;
        }
        let op = journal.replay_op(key, seq, &env, &disputes)?;
        if let Some(r) = routes {
            let named = match &op.payload.action {
                Action::Create { .. } => Some(key.id),
                _ => op.payload.file(),
            };
            let joins = match named {
                Some(n) if n == file => true,
                _ if r.start.is_some_and(|s| key <= *s) => {
                    named.is_some_and(|n| r.aliases.contains(&n))
                }
                _ => r.routed.is_some_and(|set| set.contains(&key)),
            };
            if !joins {
                // The index routed it here in another replay; this one
                // did not.
                continue;
            }
        }
        replay::apply(&mut state, &op, &mut own)?;
    }
    match (state.files.get(&file), own.newest.remove(&file)) {
        (Some(f), Some((h, body))) if h == f.hash => Ok(Some((f.exists, body))),
        (Some(f), _) if f.exists => Err(Error::Corrupt(format!(
            "replaying file {} did not produce its content",
            file.short()
        ))),
        _ => Ok(None),
    }
}

/// [`Contents`] for [`content_in`]: the file's newest text in memory; a
/// stale op's base is rebuilt from its causal past. A file created
/// concurrently at its path (an alias) has its own newest text until it
/// joins the file.
struct FileReplay<'a, S: Store> {
    journal: &'a Journal<S>,
    /// The op set replayed.
    set: &'a VersionVector,
    newest: HashMap<FileId, (ContentHash, Body)>,
}

impl<S: Store> Contents for FileReplay<'_, S> {
    fn text(&mut self, _at: Option<&OrderKey>, file: FileId, hash: ContentHash) -> Result<String> {
        match self.newest.get(&file) {
            Some((h, body)) if *h == hash => as_text(self.journal, body, hash),
            // Replay asks only for the text it has just made.
            _ => Err(Error::Corrupt(format!(
                "content {} is not the file's current text",
                hash.short()
            ))),
        }
    }

    fn put(&mut self, file: FileId, hash: ContentHash, body: &Body) -> Result<()> {
        self.newest.insert(file, (hash, body.clone()));
        Ok(())
    }

    fn base_text(
        &mut self,
        op: &ReplayOp,
        file: FileId,
        base: ContentHash,
    ) -> Result<Option<String>> {
        base_by_past(self.journal, op, file, base)
    }

    fn in_past(&mut self, op: &ReplayOp, other: OpId) -> Result<bool> {
        in_past(self.journal, op, other)
    }

    fn saw_every_change(
        &mut self,
        op: &ReplayOp,
        file: FileId,
        aliases: &[FileId],
    ) -> Result<bool> {
        saw_every_change(self.journal, self.set, op, file, aliases)
    }
}

/// Bytes of rebuilt bases kept by [`base_by_past`] before it starts over.
const BASE_MEMO_BYTES_MAX: usize = 64 << 20;

/// Rebuilt base texts by (op, file), and their bytes.
type BaseMemo = (HashMap<(OpId, FileId), Option<String>>, usize);

thread_local! {
    /// Rebuilt bases by (op, file). An op's causal past never changes, so
    /// its base is a function of the op alone and holds in any journal that
    /// has it. Without this, rebuilding a history with many stale-base ops
    /// rebuilds each nested base again and again.
    static BASES: RefCell<BaseMemo> = RefCell::new((HashMap::new(), 0));
}

/// The base text of `op`, as every replay (whole or per file) decides it:
/// `file`'s content in the replay of the op's causal past, if it hashes to
/// `base` (DESIGN §4). Never taken from what a replay holds in memory or
/// from the content cache by hash alone: those differ between replays and
/// replicas, and the verdict must not. (A text kept in memory for an alias
/// is the one it had when it joined another file, which a whole replay has
/// and one rewound past the join does not: regression seed 7417.)
fn base_by_past<S: Store>(
    journal: &Journal<S>,
    op: &ReplayOp,
    file: FileId,
    base: ContentHash,
) -> Result<Option<String>> {
    if vellum_journal::mutants::active("base_from_cache")
        && let Some(b) = journal.store().get(Ks::Content, &base.0)?
    {
        return as_text(journal, &Body::decode(&b)?, base).map(Some);
    }
    let memo_key = (op.key.id, file);
    if let Some(known) = BASES.with(|m| m.borrow().0.get(&memo_key).cloned()) {
        return Ok(known);
    }
    let past = journal.causal_past(&op.key.author, op.seq, &op.key.id)?;
    let text = match content_in(journal, file, &past, Some(&op.key))? {
        Some(body) if body.hash() == base => Some(as_text(journal, &body, base)?),
        _ => None,
    };
    BASES.with(|m| {
        let (map, bytes) = &mut *m.borrow_mut();
        let size = text.as_ref().map_or(0, String::len) + 64;
        if *bytes + size > BASE_MEMO_BYTES_MAX {
            map.clear();
            *bytes = 0;
        }
        *bytes += size;
        map.insert(memo_key, text.clone());
    });
    Ok(text)
}

/// Whether op `other` is in `op`'s causal past.
fn in_past<S: Store>(journal: &Journal<S>, op: &ReplayOp, other: OpId) -> Result<bool> {
    let Some(m) = journal.op_meta(&other)? else {
        return Ok(false);
    };
    let past = journal.causal_past(&op.key.author, op.seq, &op.key.id)?;
    journal.includes(&past, &m.author, m.seq, &m.id)
}

/// Whether every content op (Create, Edit, Replace, Resolve) on `file` (or
/// on one of its `aliases`) in `set` that sorts before `op` is in `op`'s
/// causal past. `Ks::FileOps` may list more than that (an op routed to the
/// file in another replay, or one outside `set`), so each is checked.
fn saw_every_change<S: Store>(
    journal: &Journal<S>,
    set: &VersionVector,
    op: &ReplayOp,
    file: FileId,
    aliases: &[FileId],
) -> Result<bool> {
    let past = journal.causal_past(&op.key.author, op.seq, &op.key.id)?;
    let mut keys = Vec::new();
    journal
        .store()
        .scan_prefix(Ks::FileOps, &file.0, &mut |k, _| {
            match OrderKey::from_bytes(&k[32..]) {
                Some(key) if key < op.key => keys.push(key),
                Some(_) => return ControlFlow::Break(()),
                None => {}
            }
            ControlFlow::Continue(())
        })?;
    for key in keys {
        let seq = journal.seq_at(&key)?;
        if journal.includes(&past, &key.author, seq, &key.id)?
            || !journal.includes(set, &key.author, seq, &key.id)?
        {
            continue;
        }
        let payload = journal.load_payload(&journal.load_at(&key)?)?;
        let named = match &payload.action {
            Action::Create { .. } => key.id,
            _ => match payload.file() {
                Some(f) => f,
                None => continue,
            },
        };
        if named != file && !aliases.contains(&named) {
            continue;
        }
        if matches!(
            payload.action,
            Action::Create { .. }
                | Action::Edit { .. }
                | Action::Replace { .. }
                | Action::Resolve { .. }
        ) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A body as text. The cache is keyed by content, so the same bytes may
/// have been cached as a binary file's blob: bytes are bytes.
fn as_text<S: Store>(journal: &Journal<S>, body: &Body, hash: ContentHash) -> Result<String> {
    match body {
        Body::Text(t) => Ok(t.clone()),
        Body::Blob(b) => {
            let mut bytes = Vec::with_capacity(b.size as usize);
            blob::read_blob(journal.store(), b, &mut bytes)?;
            String::from_utf8(bytes)
                .map_err(|_| Error::Corrupt(format!("content {} is not text", hash.short())))
        }
    }
}

/// Contents for replay: reads through to the cache and the journal, and
/// keeps each file's newest content in memory until [`Cache::flush`]. Only
/// the newest matters: it is the base of the file's next edit.
pub struct Cache<'a, S: Store> {
    journal: &'a Journal<S>,
    /// The op set being replayed: a version missing from memory and cache
    /// is rebuilt from the file's ops in it.
    target: VersionVector,
    current: HashMap<FileId, (ContentHash, Body)>,
    /// Files whose newest content is not yet in the store's cache.
    dirty: HashSet<FileId>,
    /// For dirty files: the cached version they had before.
    replaced: HashMap<FileId, ContentHash>,
    /// Trust recorded text outcomes instead of applying patches again.
    trust_effects: bool,
    /// What each Edit or text Replace this replay computed did, when asked
    /// for by [`Cache::recording_checks`].
    pub checked: HashMap<OpId, EditOutcome>,
    record_checks: bool,
    /// `Ks::FileOps` rows of ops this replay applied and has not stored
    /// yet: stored before anything reads a file's ops from the store, and
    /// at [`Cache::flush`].
    unindexed: Vec<Vec<u8>>,
    /// `Ks::Routed` marks of routed rows in `unindexed`.
    unrouted: Vec<Vec<u8>>,
    /// Where this replay began (the state it started from sorts up to it).
    start: Option<OrderKey>,
    /// That state's aliases, by the file they joined.
    start_aliases: HashMap<FileId, Vec<FileId>>,
    /// The ops this replay routed into each file.
    routes: HashMap<FileId, BTreeSet<OrderKey>>,
    /// Versions a caller kept from earlier replays.
    bodies: Bodies,
}

/// Bytes of file versions a [`Bodies`] keeps before dropping the oldest.
const BODIES_BYTES_MAX: usize = 16 << 20;

/// Recent file versions by hash, in memory, oldest dropped first. The
/// store's content cache keeps only each file's newest version, so after a
/// rewind to an earlier state most of that state's versions would be
/// rebuilt from their files' ops; a long-running process keeps them here
/// instead (see `Head`). Versions are looked up by content hash, so any
/// body found is the right one.
#[derive(Default)]
pub struct Bodies {
    by_hash: HashMap<ContentHash, Body>,
    order: VecDeque<ContentHash>,
    bytes: usize,
}

impl Bodies {
    fn get(&self, hash: &ContentHash) -> Option<&Body> {
        self.by_hash.get(hash)
    }

    /// What `body` counts for against [`BODIES_BYTES_MAX`]: a text's bytes,
    /// or an attachment's chunk list (its bytes live in the store).
    fn cost(body: &Body) -> usize {
        match body {
            Body::Text(t) => t.len(),
            Body::Blob(b) => {
                std::mem::size_of::<vellum_journal::payload::BlobRef>()
                    + b.chunks.len() * std::mem::size_of::<vellum_journal::payload::ChunkRef>()
            }
        }
    }

    fn insert(&mut self, hash: ContentHash, body: &Body) {
        if self.by_hash.contains_key(&hash) {
            return;
        }
        let len = Self::cost(body);
        if len > BODIES_BYTES_MAX / 4 {
            return;
        }
        while self.bytes + len > BODIES_BYTES_MAX {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            // What an entry counted for when it came in is what leaves.
            if let Some(b) = self.by_hash.remove(&old) {
                self.bytes -= Self::cost(&b);
            }
        }
        self.by_hash.insert(hash, body.clone());
        self.order.push_back(hash);
        self.bytes += len;
    }
}

impl<'a, S: Store> Cache<'a, S> {
    pub fn new(journal: &'a Journal<S>, target: &VersionVector, trust_effects: bool) -> Self {
        Cache {
            journal,
            target: target.clone(),
            current: HashMap::new(),
            dirty: HashSet::new(),
            replaced: HashMap::new(),
            trust_effects,
            checked: HashMap::new(),
            record_checks: false,
            unindexed: Vec::new(),
            unrouted: Vec::new(),
            start: None,
            start_aliases: HashMap::new(),
            routes: HashMap::new(),
            bodies: Bodies::default(),
        }
    }

    /// Looks versions up in `bodies` too, and adds the ones this replay
    /// makes; [`Cache::into_bodies`] hands them back.
    pub fn with_bodies(mut self, bodies: Bodies) -> Self {
        self.bodies = bodies;
        self
    }

    pub fn into_bodies(self) -> Bodies {
        self.bodies
    }

    /// Notes that this replay starts from `state` (whose ops sort up to
    /// its `last`).
    pub fn starting_from(&mut self, state: &VaultState) {
        self.start = state.last;
        self.start_aliases.clear();
        for (alias, survivor) in &state.aliases {
            self.start_aliases
                .entry(*survivor)
                .or_default()
                .push(*alias);
        }
    }

    /// Notes that op `key` is about `file`, for `Ks::FileOps`.
    pub fn index(&mut self, file: FileId, key: &OrderKey) {
        self.unindexed.push(file_ops_key(&file, key));
    }

    /// Stores the pending `Ks::FileOps` rows and `Ks::Routed` marks.
    fn drain_index(&mut self, batch: &mut Batch) {
        for k in self.unindexed.drain(..) {
            batch.put(Ks::FileOps, k, Vec::new());
        }
        for k in self.unrouted.drain(..) {
            batch.put(Ks::Routed, k, Vec::new());
        }
    }

    /// Stores the pending `Ks::FileOps` rows, so a rebuild from the file's
    /// ops sees every op this replay has applied.
    fn store_index(&mut self) -> Result<()> {
        if self.unindexed.is_empty() && self.unrouted.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::new();
        self.drain_index(&mut batch);
        self.journal.store().commit(batch, Durability::Buffered)
    }

    /// Records each text outcome in [`Cache::checked`], for the caller to
    /// store as the op's effect.
    pub fn recording_checks(mut self) -> Self {
        self.record_checks = true;
        self
    }

    /// Adds the newest content of every file changed since the last flush
    /// to `batch` for the content cache, and drops the version each one
    /// replaced: old versions are rebuilt from the file's ops when asked
    /// for (a file sharing the dropped bytes rebuilds its own the same way).
    pub fn flush(&mut self, batch: &mut Batch) {
        self.drain_index(batch);
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

    /// Takes `file`'s content with `hash` at the end of the replay out of
    /// its memory, or reads it like [`Cache::body`].
    pub fn take(&mut self, file: FileId, hash: ContentHash) -> Result<Body> {
        match self.current.remove(&file) {
            Some((h, b)) if h == hash => Ok(b),
            _ => self.body(None, file, hash),
        }
    }

    /// `file`'s body with `hash` just before op `at` (at the end for
    /// `None`): from memory, the cache, or the file's ops in the target.
    pub fn body(&mut self, at: Option<&OrderKey>, file: FileId, hash: ContentHash) -> Result<Body> {
        if let Some((h, b)) = self.current.get(&file)
            && *h == hash
        {
            return Ok(b.clone());
        }
        if let Some(b) = self.bodies.get(&hash) {
            return Ok(b.clone());
        }
        if let Some(b) = self.journal.store().get(Ks::Content, &hash.0)? {
            return Body::decode(&b);
        }
        self.store_index()?;
        // A deleted file's last content too: an edit that brings the file
        // back is made on it. Routings are this replay's own.
        let routes = Routes {
            start: self.start.as_ref(),
            aliases: self.start_aliases.get(&file).map_or(&[], |v| &v[..]),
            routed: self.routes.get(&file),
        };
        match replay_file_routed(self.journal, file, &self.target, at, Some(&routes))? {
            Some((_, body)) if body.hash() == hash => {
                self.bodies.insert(hash, &body);
                Ok(body)
            }
            _ => Err(Error::Corrupt(format!(
                "content {} of file {} cannot be rebuilt from its ops",
                hash.short(),
                file.short()
            ))),
        }
    }
}

impl<S: Store> Contents for Cache<'_, S> {
    fn text(&mut self, at: Option<&OrderKey>, file: FileId, hash: ContentHash) -> Result<String> {
        let body = self.body(at, file, hash)?;
        as_text(self.journal, &body, hash)
    }

    fn put(&mut self, file: FileId, hash: ContentHash, body: &Body) -> Result<()> {
        // Kept in memory either way: a merge computed again (not trusted)
        // is the base of the file's next op. Only a replay that records
        // writes it to the cache.
        self.current.insert(file, (hash, body.clone()));
        self.bodies.insert(hash, body);
        if !self.trust_effects {
            self.dirty.insert(file);
        }
        Ok(())
    }

    fn base_text(
        &mut self,
        op: &ReplayOp,
        file: FileId,
        base: ContentHash,
    ) -> Result<Option<String>> {
        self.store_index()?;
        base_by_past(self.journal, op, file, base)
    }

    fn routed(&mut self, key: &OrderKey, file: FileId) -> Result<()> {
        self.routes.entry(file).or_default().insert(*key);
        // Only the head's replay writes routings: a point's replay may
        // decide differently, and the index serves the head.
        if !self.record_checks {
            return Ok(());
        }
        self.index(file, key);
        let mut mark = key.to_bytes().to_vec();
        mark.extend_from_slice(&file.0);
        self.unrouted.push(mark);
        Ok(())
    }

    fn in_past(&mut self, op: &ReplayOp, other: OpId) -> Result<bool> {
        in_past(self.journal, op, other)
    }

    fn saw_every_change(
        &mut self,
        op: &ReplayOp,
        file: FileId,
        aliases: &[FileId],
    ) -> Result<bool> {
        self.store_index()?;
        saw_every_change(self.journal, &self.target, op, file, aliases)
    }

    fn edit(
        &mut self,
        op: &ReplayOp,
        file: FileId,
        base: ContentHash,
        current: ContentHash,
        change: &TextChange<'_>,
    ) -> Result<EditOutcome> {
        // A recorded outcome that does not depend on the text before the op
        // holds in any replay: the op's own result on its own base, or a
        // patch that does not fit its base. A merge depends on what the
        // replay had before the op, which a point may not share with the
        // replay that recorded it.
        if self.trust_effects
            && let Some(rec) = self.journal.store().get(Ks::Effects, &op.key.to_bytes())?
            && let Some(outcome) = rec.get(1..).and_then(EditOutcome::from_record)
            && match outcome {
                EditOutcome::Applied => base == current,
                EditOutcome::BadPatch => true,
                EditOutcome::Merged { .. } | EditOutcome::UnknownBase => false,
            }
        {
            if outcome == EditOutcome::Applied {
                // The file now holds the op's result, whose text was not
                // made: a text kept in memory would be a stale version that
                // the next op's base could be taken from.
                self.current.remove(&file);
            }
            return Ok(outcome);
        }
        let outcome = match change {
            // The common case: the newest version in memory is the base;
            // patch it without another copy of the text.
            TextChange::Patch { patch, result } if base == current => {
                let out = match self.current.get(&file) {
                    Some((h, Body::Text(t))) if *h == base => apply_patch_strict(t, patch, result),
                    _ => apply_patch_strict(&self.text(Some(&op.key), file, base)?, patch, result),
                };
                match out {
                    Some(out) => {
                        let body = Body::Text(out);
                        self.bodies.insert(*result, &body);
                        self.current.insert(file, (*result, body));
                        if !self.trust_effects {
                            self.dirty.insert(file);
                        }
                        EditOutcome::Applied
                    }
                    None => EditOutcome::BadPatch,
                }
            }
            _ => change_text(self, op, file, base, current, change)?,
        };
        if self.record_checks {
            self.checked.insert(op.key.id, outcome);
        }
        Ok(outcome)
    }
}

/// Drops the routed `Ks::FileOps` rows of ops that sort after `after` (all
/// for `None`): a replay that rewinds decides those routings again, and a
/// row from an earlier decision would put a Create into a file it no
/// longer joins.
pub fn drop_routings_after<S: Store>(journal: &Journal<S>, after: Option<&OrderKey>) -> Result<()> {
    let from = after.map(|k| k.to_bytes());
    let lo = match &from {
        Some(b) => std::ops::Bound::Excluded(&b[..]),
        None => std::ops::Bound::Unbounded,
    };
    let mut marks = Vec::new();
    journal.store().scan(
        Ks::Routed,
        (lo, std::ops::Bound::Unbounded),
        false,
        &mut |k, _| {
            marks.push(k.to_vec());
            ControlFlow::Continue(())
        },
    )?;
    // A key after `after` that starts with `after` itself (its own marks)
    // sorts after the bare key too: keep only later ops'.
    if marks.is_empty() {
        return Ok(());
    }
    let mut batch = Batch::new();
    for m in marks {
        if m.len() != 72 + 32 {
            continue;
        }
        if let (Some(key), Some(file)) =
            (OrderKey::from_bytes(&m[..72]), FileId::from_slice(&m[72..]))
        {
            if after.is_some_and(|a| key <= *a) {
                continue;
            }
            batch.delete(Ks::FileOps, file_ops_key(&file, &key));
        }
        batch.delete(Ks::Routed, m);
    }
    journal.store().commit(batch, Durability::Buffered)
}

#[cfg(test)]
mod bodies_tests {
    use super::*;
    use vellum_journal::payload::{BlobRef, ChunkRef};

    fn blob(i: u32, chunks: usize) -> Body {
        Body::Blob(BlobRef {
            hash: ContentHash::of(&i.to_le_bytes()),
            size: 64 * 1024 * chunks as u64,
            chunks: (0..chunks)
                .map(|c| ChunkRef {
                    id: [c as u8; 32],
                    dedup: [0; 32],
                    key: [0; 32],
                    len: 64 * 1024,
                })
                .collect(),
        })
    }

    /// The count always matches what is held, however many attachment
    /// versions come and go: before, dropping one took off a fixed 48
    /// bytes, so the count crept up until every insert dropped everything.
    #[test]
    fn the_byte_count_is_what_it_holds() {
        let mut bodies = Bodies::default();
        for i in 0..5_000u32 {
            let body = if i % 3 == 0 {
                Body::Text(format!("note {i}\n").repeat(50))
            } else {
                blob(i, 1 + (i as usize % 2_000))
            };
            bodies.insert(ContentHash::of(&i.to_le_bytes()), &body);
            let held: usize = bodies.by_hash.values().map(Bodies::cost).sum();
            assert_eq!(bodies.bytes, held, "after {i} inserts");
            assert!(bodies.bytes <= BODIES_BYTES_MAX);
        }
        // Well filled, not emptied by a count that ran away.
        assert!(bodies.bytes > BODIES_BYTES_MAX / 2, "{}", bodies.bytes);
        assert!(bodies.by_hash.len() > 10, "{}", bodies.by_hash.len());
    }
}
