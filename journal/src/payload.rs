//! The encrypted payload of an op, encoded with rkyv. Envelope format 1 pins
//! this layout: changing any type here needs a new format number.

use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::error::{Error, Result};
use crate::id::{ContentHash, FileId, OpId};

/// The merge version this build writes into a new vault's genesis.
pub const MERGE_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Payload {
    pub action: Action,
    /// Why the op was written, when it was not a plain local edit.
    pub cause: Option<Cause>,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum Action {
    Genesis {
        merge_version: u32,
    },
    Create {
        path: String,
        mtime_ms: i64,
        body: Body,
    },
    /// `patch` is diff-match-patch text in Compat mode (char offsets).
    Edit {
        file: FileId,
        base: ContentHash,
        patch: String,
        result: ContentHash,
        /// Byte length of the result, so replay can track sizes without
        /// applying the patch.
        result_size: u64,
        mtime_ms: i64,
    },
    Replace {
        file: FileId,
        base: ContentHash,
        body: Body,
        mtime_ms: i64,
    },
    Delete {
        file: FileId,
        base: ContentHash,
        mtime_ms: i64,
    },
    Rename {
        file: FileId,
        from: String,
        to: String,
        mtime_ms: i64,
    },
    /// Closes the conflicts of `file` whose ops are in `sides`, with
    /// `body`. `base` is the file's content the resolver saw: a Resolve
    /// merges like a Replace of that version.
    Resolve {
        file: FileId,
        sides: Vec<OpId>,
        base: ContentHash,
        body: Body,
        mtime_ms: i64,
    },
    DeviceInfo {
        name: String,
    },
    VaultConfig {
        ignore: Vec<String>,
        merge_version: u32,
    },
    /// The payload of a Member control op (the membership itself is in the
    /// op's cleartext control fields): the new device's name.
    Member {
        name: String,
    },
    /// The payload of every other control op (a removal, KeyRotate,
    /// KeyShare): what it does is in its control fields.
    Control,
}

/// The content of a Create, Replace or Resolve.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum Body {
    Text(String),
    Blob(BlobRef),
}

/// A binary file: its plaintext hash and size, and the chunks that hold it.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct BlobRef {
    pub hash: ContentHash,
    pub size: u64,
    pub chunks: Vec<ChunkRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct ChunkRef {
    /// blake3 of the stored chunk (nonce ‖ ciphertext): blind peers can check it.
    pub id: [u8; 32],
    /// Keyed blake3 of the plaintext under the epoch's dedup key.
    pub dedup: [u8; 32],
    /// The key that seals this chunk: the blob's own random key for new
    /// chunks, or the key of the blob that first stored a deduplicated one.
    pub key: [u8; 32],
    pub len: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum Cause {
    /// `vellum restore`: the point, as a `vv:` string.
    Restore { point: String },
    /// `vellum rollback`: the point, as a `vv:` string.
    Rollback { point: String },
    /// `vellum quarantine reject`: the rejected batch, named by its first
    /// op (hex id); the op undoes what the batch did to one file.
    Reject { batch: String },
}

impl Payload {
    pub fn new(action: Action) -> Self {
        Payload {
            action,
            cause: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        rkyv::to_bytes::<rancor::Error>(self)
            .expect("serialising owned payload types cannot fail")
            .into_vec()
    }

    /// Decodes an authenticated payload. The AEAD already ruled out
    /// corruption, so bytes that do not validate come from a newer writer.
    pub fn decode(bytes: &[u8]) -> Result<Payload> {
        let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        rkyv::from_bytes::<Payload, rancor::Error>(&aligned).map_err(|_| {
            Error::UpgradeRequired("op payload has a layout this build does not know".into())
        })
    }

    /// The file an op changes, if it names one.
    pub fn file(&self) -> Option<FileId> {
        match &self.action {
            Action::Edit { file, .. }
            | Action::Replace { file, .. }
            | Action::Delete { file, .. }
            | Action::Rename { file, .. }
            | Action::Resolve { file, .. } => Some(*file),
            _ => None,
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match &self.action {
            Action::Genesis { .. } => "genesis",
            Action::Create { .. } => "create",
            Action::Edit { .. } => "edit",
            Action::Replace { .. } => "replace",
            Action::Delete { .. } => "delete",
            Action::Rename { .. } => "rename",
            Action::Resolve { .. } => "resolve",
            Action::DeviceInfo { .. } => "device_info",
            Action::Member { .. } => "member",
            Action::Control => "control",
            Action::VaultConfig { .. } => "vault_config",
        }
    }
}

impl Body {
    /// The rkyv encoding, as the content cache stores it.
    pub fn encode(&self) -> Vec<u8> {
        rkyv::to_bytes::<rancor::Error>(self)
            .expect("serialising owned payload types cannot fail")
            .into_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Body> {
        let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        rkyv::from_bytes::<Body, rancor::Error>(&aligned)
            .map_err(|_| Error::Corrupt("content record does not decode".into()))
    }

    pub fn hash(&self) -> ContentHash {
        match self {
            Body::Text(t) => ContentHash::of(t.as_bytes()),
            Body::Blob(b) => b.hash,
        }
    }
    pub fn size(&self) -> u64 {
        match self {
            Body::Text(t) => t.len() as u64,
            Body::Blob(b) => b.size,
        }
    }
}
