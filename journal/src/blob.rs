//! Binary and large files as blobs: FastCDC chunks, each sealed with
//! XChaCha20-Poly1305 and stored under the blake3 of its ciphertext.
//!
//! Files are streamed in and out chunk by chunk, never held whole. A chunk
//! already stored (same dedup id) is reused with the key it was sealed
//! with; new chunks are sealed with the blob's own random key.

use std::io::{Read, Write};
use std::ops::{Bound, ControlFlow};

use chacha20poly1305::aead::{Aead, Payload as AeadPayload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};

use crate::entropy::Entropy;
use crate::error::{Error, Result};
use crate::id::ContentHash;
use crate::limits::{
    BLOB_CHUNKS_MAX, CHUNK_AVG_BYTES, CHUNK_BYTES_MAX, CHUNK_MAX_BYTES, CHUNK_MIN_BYTES,
    LARGE_BLOB_BYTES, LARGE_CHUNK_AVG_BYTES, LARGE_CHUNK_MIN_BYTES,
};
use crate::payload::{BlobRef, ChunkRef};
use crate::store::{Batch, Durability, Ks, Store};

const NONCE_BYTES: usize = 24;
/// Buffered chunk writes are committed in groups of about this many bytes.
const CHUNK_GROUP_BYTES: usize = 1024 * 1024;

/// Chunks, seals and stores a blob read from `reader`. Every chunk is
/// durable when this returns, so the op that names the blob may follow.
pub fn store_blob<S: Store + ?Sized>(
    store: &S,
    reader: impl Read,
    dedup_key: &[u8; 32],
    entropy: &mut dyn Entropy,
) -> Result<BlobRef> {
    store_blob_of_size(store, reader, 0, dedup_key, entropy)
}

/// [`store_blob`] for content of about `size` bytes (a file's length; 0
/// when unknown): a file over `LARGE_BLOB_BYTES` is cut into coarser
/// chunks, within `CHUNK_MAX_BYTES`, so its chunk list fits an op.
pub fn store_blob_of_size<S: Store + ?Sized>(
    store: &S,
    reader: impl Read,
    size: u64,
    dedup_key: &[u8; 32],
    entropy: &mut dyn Entropy,
) -> Result<BlobRef> {
    let (min, avg, max) = chunk_sizes(size);
    let mut blob_key = [0u8; 32];
    entropy.fill(&mut blob_key);
    let cipher = XChaCha20Poly1305::new(&blob_key.into());
    let mut whole = blake3::Hasher::new();
    let mut size = 0u64;
    let mut chunks = Vec::new();
    let mut batch = Batch::new();
    let mut batch_bytes = 0;
    let mut new_bytes = 0u64;
    let cdc = fastcdc::v2020::StreamCDC::new(reader, min, avg, max);
    for chunk in cdc {
        let chunk = chunk.map_err(|e| match e {
            fastcdc::v2020::Error::IoError(io) => Error::Io(io),
            other => Error::Io(std::io::Error::other(other.to_string())),
        })?;
        let data = chunk.data;
        whole.update(&data);
        size += data.len() as u64;
        if chunks.len() == BLOB_CHUNKS_MAX {
            return Err(Error::Usage(format!(
                "file is too large: more than {BLOB_CHUNKS_MAX} chunks"
            )));
        }
        let dedup = *blake3::keyed_hash(dedup_key, &data).as_bytes();
        if let Some(known) = store.get(Ks::Dedup, &dedup)?
            && known.len() == 64
        {
            chunks.push(ChunkRef {
                id: known[..32].try_into().expect("32"),
                dedup,
                key: known[32..].try_into().expect("32"),
                len: data.len() as u32,
            });
            continue;
        }
        let mut nonce = [0u8; NONCE_BYTES];
        entropy.fill(&mut nonce);
        let ct = cipher
            .encrypt(
                &XNonce::from(nonce),
                AeadPayload {
                    msg: &data,
                    aad: &dedup,
                },
            )
            .map_err(|_| Error::Malformed("chunk encryption failed".into()))?;
        let mut stored = Vec::with_capacity(NONCE_BYTES + ct.len());
        stored.extend_from_slice(&nonce);
        stored.extend_from_slice(&ct);
        debug_assert!(stored.len() <= CHUNK_BYTES_MAX);
        let id = *blake3::hash(&stored).as_bytes();
        let mut known = id.to_vec();
        known.extend_from_slice(&blob_key);
        batch_bytes += stored.len();
        new_bytes += stored.len() as u64;
        batch.put(Ks::Chunks, id.to_vec(), stored);
        batch.put(Ks::Dedup, dedup.to_vec(), known);
        chunks.push(ChunkRef {
            id,
            dedup,
            key: blob_key,
            len: data.len() as u32,
        });
        if batch_bytes >= CHUNK_GROUP_BYTES {
            store.commit(std::mem::take(&mut batch), Durability::Buffered)?;
            batch_bytes = 0;
        }
    }
    let total = stored_chunk_bytes(store)? + new_bytes;
    batch.put(Ks::Meta, CHUNK_BYTES_META, total.to_le_bytes().to_vec());
    // One fsync covers every group above: a durable commit flushes all
    // earlier buffered writes.
    store.commit(batch, Durability::Durable)?;
    Ok(BlobRef {
        hash: ContentHash(*whole.finalize().as_bytes()),
        size,
        chunks,
    })
}

const CHUNK_BYTES_META: &[u8] = b"chunk_bytes";
/// `Ks::Meta` prefix: content ops admitted before their epoch key was
/// held, whose chunks are not known yet (`unread/` ‖ OpId → empty).
const UNREAD: &[u8] = b"unread/";
/// `Ks::Meta` prefix: chunks admitted ops name and this store lacks
/// (`chunk_debt/` ‖ chunk id → empty): fetched from peers.
const DEBT: &[u8] = b"chunk_debt/";
/// `Ks::Meta` prefix: unread ops whose chunk ids no peer has told yet
/// (`need_chunk_ids/` ‖ OpId → empty): peers that can read them are asked.
const NEED_IDS: &[u8] = b"need_chunk_ids/";
/// `Ks::Meta` prefix: the chunk ids a peer said an unread op names
/// (`chunk_ids/` ‖ OpId → the ids, 32 bytes each), passed on to peers that
/// cannot read the op either.
const TOLD_IDS: &[u8] = b"chunk_ids/";

fn prefixed(prefix: &[u8], id: &[u8; 32]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(id);
    k
}

/// FastCDC's minimum, average and maximum chunk sizes for content of
/// `size` bytes.
pub fn chunk_sizes(size: u64) -> (usize, usize, usize) {
    if size > LARGE_BLOB_BYTES {
        (
            LARGE_CHUNK_MIN_BYTES,
            LARGE_CHUNK_AVG_BYTES,
            CHUNK_MAX_BYTES,
        )
    } else {
        (CHUNK_MIN_BYTES, CHUNK_AVG_BYTES, CHUNK_MAX_BYTES)
    }
}

/// Records in `batch` that op `id` was admitted unread: its chunk ids are
/// asked of peers until one tells them.
pub(crate) fn note_unread(batch: &mut Batch, id: &crate::id::OpId) {
    batch.put(Ks::Meta, prefixed(UNREAD, &id.0), Vec::new());
    batch.put(Ks::Meta, prefixed(NEED_IDS, &id.0), Vec::new());
}

/// Records in `batch` that an admitted op names chunk `id`, not stored.
pub(crate) fn note_debt(batch: &mut Batch, id: &[u8; 32]) {
    batch.put(Ks::Meta, prefixed(DEBT, id), Vec::new());
}

/// Stores chunks received from elsewhere (an import), each checked against
/// its id (blake3 of the stored bytes), durably: they must be durable
/// before the ops naming them are admitted. Chunks already held are
/// skipped. Returns how many were new.
pub fn store_chunks<S: Store>(store: &S, chunks: Vec<([u8; 32], Vec<u8>)>) -> Result<u64> {
    let mut batch = Batch::new();
    let (mut added, mut bytes) = (0u64, 0u64);
    for (id, stored) in chunks {
        if stored.len() > CHUNK_BYTES_MAX || *blake3::hash(&stored).as_bytes() != id {
            return Err(Error::Malformed(format!(
                "chunk {} does not match its id",
                crate::id::hex(&id[..6])
            )));
        }
        if store.get(Ks::Chunks, &id)?.is_none() {
            added += 1;
            bytes += stored.len() as u64;
            batch.put(Ks::Chunks, id.to_vec(), stored);
        }
        batch.delete(Ks::Meta, prefixed(DEBT, &id));
    }
    let total = stored_chunk_bytes(store)? + bytes;
    batch.put(Ks::Meta, CHUNK_BYTES_META, total.to_le_bytes().to_vec());
    store.commit(batch, Durability::Durable)?;
    Ok(added)
}

/// Copies every stored chunk (and this vault's dedup index) into a new store
/// durably, in groups: a clone's chunks must be durable before
/// the ops that name them are admitted. Returns the chunk bytes stored.
pub fn copy_chunks<A: Store, B: Store>(from: &A, to: &B) -> Result<u64> {
    let mut total = stored_chunk_bytes(to)?;
    for ks in [Ks::Chunks, Ks::Dedup] {
        let mut batch = Batch::new();
        let mut bytes = 0;
        let mut failed = None;
        from.scan(
            ks,
            (Bound::Unbounded, Bound::Unbounded),
            false,
            &mut |k, v| {
                bytes += v.len();
                if ks == Ks::Chunks {
                    total += v.len() as u64;
                }
                batch.put(ks, k.to_vec(), v.to_vec());
                if bytes >= CHUNK_GROUP_BYTES {
                    bytes = 0;
                    if let Err(e) = to.commit(std::mem::take(&mut batch), Durability::Buffered) {
                        failed = Some(e);
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            },
        )?;
        if let Some(e) = failed {
            return Err(e);
        }
        to.commit(batch, Durability::Buffered)?;
    }
    let mut batch = Batch::new();
    batch.put(Ks::Meta, CHUNK_BYTES_META, total.to_le_bytes().to_vec());
    to.commit(batch, Durability::Durable)?;
    Ok(total)
}

/// Total bytes of stored chunks (nonce, ciphertext and tag).
pub fn stored_chunk_bytes<S: Store + ?Sized>(store: &S) -> Result<u64> {
    Ok(store
        .get(Ks::Meta, CHUNK_BYTES_META)?
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0))
}

/// Streams a blob's plaintext into `out`, checking every chunk's id, its
/// decryption and the whole file's hash.
pub fn read_blob<S: Store + ?Sized>(store: &S, blob: &BlobRef, out: &mut dyn Write) -> Result<()> {
    let mut whole = blake3::Hasher::new();
    for c in &blob.chunks {
        let data = read_chunk(store, c)?;
        whole.update(&data);
        out.write_all(&data)?;
    }
    if whole.finalize().as_bytes() != &blob.hash.0 {
        return Err(Error::Corrupt(format!(
            "blob {} does not hash to its id",
            blob.hash.short()
        )));
    }
    Ok(())
}

fn read_chunk<S: Store + ?Sized>(store: &S, c: &ChunkRef) -> Result<Vec<u8>> {
    let missing = || Error::Corrupt(format!("chunk {} is missing", crate::id::hex(&c.id[..6])));
    let stored = store.get(Ks::Chunks, &c.id)?.ok_or_else(missing)?;
    if blake3::hash(&stored).as_bytes() != &c.id || stored.len() < NONCE_BYTES {
        return Err(Error::Corrupt(format!(
            "chunk {} is damaged",
            crate::id::hex(&c.id[..6])
        )));
    }
    let nonce: [u8; NONCE_BYTES] = stored[..NONCE_BYTES].try_into().expect("24");
    let data = XChaCha20Poly1305::new(&c.key.into())
        .decrypt(
            &XNonce::from(nonce),
            AeadPayload {
                msg: &stored[NONCE_BYTES..],
                aad: &c.dedup,
            },
        )
        .map_err(|_| Error::Corrupt("chunk does not decrypt".into()))?;
    if data.len() != c.len as usize {
        return Err(Error::Corrupt("chunk has the wrong length".into()));
    }
    Ok(data)
}

/// Whether every chunk the blob names is present and intact.
pub fn check_blob<S: Store + ?Sized>(store: &S, blob: &BlobRef) -> Result<()> {
    read_blob(store, blob, &mut std::io::sink())
}

impl<S: Store> crate::journal::Journal<S> {
    /// The chunks op `env` names that this store lacks: those of the blob
    /// in its payload, if this device can open the payload (a device that
    /// cannot learns of no chunk). The op need not be admitted.
    pub fn missing_chunks(&self, env: &crate::envelope::Envelope) -> Result<Vec<[u8; 32]>> {
        let mut out = Vec::new();
        for id in self.named_chunks(env).unwrap_or_default() {
            if self.store().get(Ks::Chunks, &id)?.is_none() {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Every chunk the blob in `env`'s payload names, once each, in order;
    /// `None` if this device cannot open the payload.
    fn named_chunks(&self, env: &crate::envelope::Envelope) -> Option<Vec<[u8; 32]>> {
        use crate::payload::{Action, Body};
        if env.kind() != crate::envelope::OpKind::Content {
            return Some(Vec::new());
        }
        let payload = self.load_payload(env).ok()?;
        let blob = match &payload.action {
            Action::Create {
                body: Body::Blob(b),
                ..
            }
            | Action::Replace {
                body: Body::Blob(b),
                ..
            }
            | Action::Resolve {
                body: Body::Blob(b),
                ..
            } => b,
            _ => return Some(Vec::new()),
        };
        let mut out: Vec<[u8; 32]> = Vec::new();
        for c in &blob.chunks {
            if !out.contains(&c.id) {
                out.push(c.id);
            }
        }
        Some(out)
    }

    /// The chunk ids op `id` names, for a peer that cannot read it: from
    /// the payload if this device can read it, else what a peer told
    /// ([`Journal::learn_chunk_ids`]); `None` if neither (or the op is not
    /// held).
    pub fn chunk_ids(&self, id: &crate::id::OpId) -> Result<Option<Vec<[u8; 32]>>> {
        let Some(env) = self.load(id)? else {
            return Ok(None);
        };
        if let Some(ids) = self.named_chunks(&env) {
            return Ok(Some(ids));
        }
        Ok(self
            .store()
            .get(Ks::Meta, &prefixed(TOLD_IDS, &id.0))?
            .map(|b| {
                b.chunks_exact(32)
                    .map(|c| c.try_into().expect("32 bytes"))
                    .collect()
            }))
    }

    /// Unread ops whose chunk ids no peer has told yet, at most `limit`,
    /// leaving out `skip`: peers are asked for them.
    pub fn ops_needing_chunk_ids(
        &self,
        limit: usize,
        skip: &std::collections::BTreeSet<crate::id::OpId>,
    ) -> Result<Vec<crate::id::OpId>> {
        let mut out = Vec::new();
        self.store().scan_prefix(Ks::Meta, NEED_IDS, &mut |k, _| {
            if let Some(id) = crate::id::OpId::from_slice(&k[NEED_IDS.len()..])
                && !skip.contains(&id)
            {
                out.push(id);
            }
            if out.len() >= limit {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })?;
        Ok(out)
    }

    /// Records what a peer said unread op `id` names: the chunks this
    /// store lacks become debt, fetched like any other. Nothing proves the
    /// peer right (only a reader of the op could check), so a lying member
    /// costs this device at most the chunks of that op: they are asked
    /// for, and nobody has them. Ignored for an op this device can read,
    /// or whose ids it already knows, and for more ids than a blob may
    /// name.
    pub fn learn_chunk_ids(&self, id: &crate::id::OpId, ids: &[[u8; 32]]) -> Result<()> {
        let need = prefixed(NEED_IDS, &id.0);
        if ids.len() > crate::limits::BLOB_CHUNKS_MAX
            || self.store().get(Ks::Meta, &need)?.is_none()
        {
            return Ok(());
        }
        let mut batch = Batch::new();
        for c in ids {
            if self.store().get(Ks::Chunks, c)?.is_none()
                && !crate::mutants::active("relay_keeps_told_chunks_unowed")
            {
                note_debt(&mut batch, c);
            }
        }
        batch.put(Ks::Meta, prefixed(TOLD_IDS, &id.0), ids.concat());
        batch.delete(Ks::Meta, need);
        self.store().commit(batch, Durability::Buffered)
    }

    /// Whether the store still waits for chunk `id` from a peer: an
    /// admitted op named it, and it has not arrived.
    pub fn awaits_chunk(&self, id: &[u8; 32]) -> Result<bool> {
        if self.store().get(Ks::Meta, &prefixed(DEBT, id))?.is_none() {
            return Ok(false);
        }
        Ok(self.store().get(Ks::Chunks, id)?.is_none())
    }

    /// Chunks that admitted ops name and this store lacks, at most `limit`:
    /// those of ops admitted before this device could read them (a member
    /// that joined, a key that came late). Peers are asked for them.
    pub fn chunk_debt(&self, limit: usize) -> Result<Vec<[u8; 32]>> {
        let mut keys = Vec::new();
        self.store().scan_prefix(Ks::Meta, DEBT, &mut |k, _| {
            keys.push(k.to_vec());
            if keys.len() >= limit {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let Ok(id) = <[u8; 32]>::try_from(&k[DEBT.len()..]) else {
                continue;
            };
            if self.store().get(Ks::Chunks, &id)?.is_none() {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Ops admitted unread whose key is now held: their missing chunks
    /// become debt (after keys are learned).
    pub(crate) fn settle_unread(&self) -> Result<()> {
        let mut ids = Vec::new();
        self.store().scan_prefix(Ks::Meta, UNREAD, &mut |k, _| {
            if let Some(id) = crate::id::OpId::from_slice(&k[UNREAD.len()..]) {
                ids.push(id);
            }
            std::ops::ControlFlow::Continue(())
        })?;
        if ids.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::new();
        for id in ids {
            let Some(env) = self.load(&id)? else {
                batch.delete(Ks::Meta, prefixed(UNREAD, &id.0));
                batch.delete(Ks::Meta, prefixed(NEED_IDS, &id.0));
                continue;
            };
            if self.keys().get(&env.header().key_epoch).is_none() {
                continue;
            }
            for c in self.missing_chunks(&env)? {
                batch.put(Ks::Meta, prefixed(DEBT, &c), Vec::new());
            }
            // Its own reading now answers peers.
            batch.delete(Ks::Meta, prefixed(UNREAD, &id.0));
            batch.delete(Ks::Meta, prefixed(NEED_IDS, &id.0));
            batch.delete(Ks::Meta, prefixed(TOLD_IDS, &id.0));
        }
        if !batch.is_empty() {
            self.store().commit(batch, Durability::Buffered)?;
        }
        Ok(())
    }

    /// A stored chunk (nonce ‖ ciphertext) by its id.
    pub fn chunk(&self, id: &[u8; 32]) -> Result<Option<Vec<u8>>> {
        self.store().get(Ks::Chunks, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;
    use crate::store::MemStore;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut e = SeededEntropy::new(seed);
        let mut v = vec![0; len];
        e.fill(&mut v);
        v
    }

    #[test]
    fn files_over_the_large_size_are_chunked_coarser_within_the_same_limit() {
        assert_eq!(chunk_sizes(LARGE_BLOB_BYTES).1, CHUNK_AVG_BYTES);
        assert_eq!(chunk_sizes(LARGE_BLOB_BYTES + 1).1, LARGE_CHUNK_AVG_BYTES);
        // A 1 GiB file fits an op's chunk list, where 64 KiB chunks would not.
        let gib = 1u64 << 30;
        assert!(gib / LARGE_CHUNK_AVG_BYTES as u64 * 3 / 2 < BLOB_CHUNKS_MAX as u64);
        assert!(gib / CHUNK_AVG_BYTES as u64 > BLOB_CHUNKS_MAX as u64);
        // The size is a hint; 8 MiB chunked as if it were large.
        let store = MemStore::new();
        let mut e = SeededEntropy::new(3);
        let data = noise(8 << 20, 4);
        let blob =
            store_blob_of_size(&store, &data[..], LARGE_BLOB_BYTES + 1, &[6; 32], &mut e).unwrap();
        let lens: Vec<usize> = blob.chunks.iter().map(|c| c.len as usize).collect();
        assert!(lens.iter().all(|l| *l <= CHUNK_MAX_BYTES), "{lens:?}");
        let avg = data.len() / lens.len();
        assert!(avg > 128 * 1024, "average chunk {avg} B");
        let mut out = Vec::new();
        read_blob(&store, &blob, &mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn round_trip_and_dedup() {
        let store = MemStore::new();
        let mut e = SeededEntropy::new(1);
        let key = [5; 32];
        let data = noise(1_000_000, 2);
        let a = store_blob(&store, &data[..], &key, &mut e).unwrap();
        assert_eq!(a.size, data.len() as u64);
        assert!(a.chunks.len() > 3);
        let mut out = Vec::new();
        read_blob(&store, &a, &mut out).unwrap();
        assert_eq!(out, data);

        // An edit in the middle reuses most chunks, even under a new blob key.
        let before = store.count(Ks::Chunks).unwrap();
        let mut edited = data.clone();
        edited.splice(500_000..500_000, b"inserted".iter().copied());
        let b = store_blob(&store, &edited[..], &key, &mut e).unwrap();
        let added = store.count(Ks::Chunks).unwrap() - before;
        assert!(added <= 2, "{added} new chunks for a small insert");
        let mut out = Vec::new();
        read_blob(&store, &b, &mut out).unwrap();
        assert_eq!(out, edited);
    }

    #[test]
    fn damaged_chunk_is_caught() {
        let store = MemStore::new();
        let blob = store_blob(
            &store,
            &noise(100_000, 3)[..],
            &[1; 32],
            &mut SeededEntropy::new(4),
        )
        .unwrap();
        let id = blob.chunks[0].id;
        let mut stored = store.get(Ks::Chunks, &id).unwrap().unwrap();
        stored[30] ^= 1;
        let mut b = Batch::new();
        b.put(Ks::Chunks, id.to_vec(), stored);
        store.commit(b, Durability::Durable).unwrap();
        assert!(check_blob(&store, &blob).is_err());
    }
}
