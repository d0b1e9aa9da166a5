//! The session messages on the wire (DESIGN §6), version 1. Every message
//! is `version u8 ‖ type u8 ‖ body`, integers little-endian, lists with a
//! count prefix; docs/PROTOCOL.md §10 gives the layout byte by byte.
//! Decoding checks every length against the bytes present and the limits
//! below, so garbage is an error, never a panic or a large allocation.

use vellum_journal::limits::{BLOB_CHUNKS_MAX, CHUNK_BYTES_MAX, OP_BYTES_MAX};
use vellum_journal::{DeviceId, OpId, VaultId, VersionVector};

/// The protocol version this build speaks (the first byte of a message).
pub const WIRE_VERSION: u8 = 1;
/// The `proto` a Hello carries: the sync protocol revision.
pub const PROTO: u32 = 2;
/// An Ops message holds ops up to this many bytes, or one larger op.
pub const BATCH_BYTES_MAX: usize = 256 * 1024;
/// Largest message accepted: a batch, or one op of the largest size.
pub const MESSAGE_BYTES_MAX: usize = BATCH_BYTES_MAX + OP_BYTES_MAX + 1024;
/// Most entries in a version vector on the wire.
pub const VV_ENTRIES_MAX: usize = 4096;
/// Most ranges in one Want.
pub const WANT_RANGES_MAX: usize = 1024;
/// Most chunk ids in one WantChunks.
pub const WANT_CHUNKS_MAX: usize = 1024;
/// Most ops in one WantChunkIds.
pub const WANT_CHUNK_IDS_OPS_MAX: usize = 1024;

const T_HELLO: u8 = 1;
const T_HAVE: u8 = 2;
const T_WANT: u8 = 3;
const T_OPS: u8 = 4;
const T_BYE: u8 = 5;
const T_WANT_CHUNKS: u8 = 6;
const T_CHUNKS: u8 = 7;
const T_WANT_CHUNK_IDS: u8 = 8;
const T_CHUNK_IDS: u8 = 9;

/// Ops of one author that a peer asks for: those on the branch ending at
/// `head` with seq in `from..=to`. `from` is the asker's guess; the server
/// starts lower where the asker's last Have lacks ops below it (a fork).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub author: DeviceId,
    pub from: u64,
    pub to: u64,
    pub head: OpId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// The first message each way.
    Hello {
        proto: u32,
        vault: VaultId,
        device: DeviceId,
        vv: VersionVector,
    },
    /// What the sender holds: after each local op, and every 30 s.
    Have { vv: VersionVector },
    /// Ops the sender lacks, and how many bytes it will take now.
    Want { credit: u32, ranges: Vec<Range> },
    /// Ops, each exactly as signed, per author in seq order.
    Ops { ops: Vec<Vec<u8>> },
    /// The sender closes the session, and says why.
    Bye { reason: String },
    /// Chunks the sender lacks (by transport id: blake3 of the stored
    /// bytes), and how many bytes it will take now.
    WantChunks { credit: u32, ids: Vec<[u8; 32]> },
    /// Stored chunks (nonce ‖ ciphertext), each with its id.
    Chunks { chunks: Vec<([u8; 32], Vec<u8>)> },
    /// Ops the sender holds but cannot read (a blind member, or a key not
    /// yet received), whose chunk ids it asks for.
    WantChunkIds { ops: Vec<OpId> },
    /// For ops asked about: the chunk ids each names, or `None` where the
    /// sender does not know them either.
    ChunkIds {
        entries: Vec<(OpId, Option<Vec<[u8; 32]>>)>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("message is {0} bytes, more than {MESSAGE_BYTES_MAX}")]
    TooLarge(usize),
    #[error("wire version {0} is not {WIRE_VERSION}: upgrade required")]
    Version(u8),
    #[error("unknown message type {0}")]
    UnknownType(u8),
    #[error("message is cut short")]
    Truncated,
    #[error("{0}")]
    Invalid(String),
}

/// The name of an encoded message's type, for logs ("?" when the bytes
/// are no message).
pub fn kind_of(bytes: &[u8]) -> &'static str {
    match bytes.get(1).copied() {
        Some(T_HELLO) => "Hello",
        Some(T_HAVE) => "Have",
        Some(T_WANT) => "Want",
        Some(T_OPS) => "Ops",
        Some(T_BYE) => "Bye",
        Some(T_WANT_CHUNKS) => "WantChunks",
        Some(T_CHUNKS) => "Chunks",
        Some(T_WANT_CHUNK_IDS) => "WantChunkIds",
        Some(T_CHUNK_IDS) => "ChunkIds",
        _ => "?",
    }
}

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![WIRE_VERSION];
        match self {
            Message::Hello {
                proto,
                vault,
                device,
                vv,
            } => {
                b.push(T_HELLO);
                b.extend_from_slice(&proto.to_le_bytes());
                b.extend_from_slice(&vault.0);
                b.extend_from_slice(&device.0);
                put_vv(&mut b, vv);
            }
            Message::Have { vv } => {
                b.push(T_HAVE);
                put_vv(&mut b, vv);
            }
            Message::Want { credit, ranges } => {
                b.push(T_WANT);
                b.extend_from_slice(&credit.to_le_bytes());
                b.extend_from_slice(&(ranges.len() as u16).to_le_bytes());
                for r in ranges {
                    b.extend_from_slice(&r.author.0);
                    b.extend_from_slice(&r.from.to_le_bytes());
                    b.extend_from_slice(&r.to.to_le_bytes());
                    b.extend_from_slice(&r.head.0);
                }
            }
            Message::Ops { ops } => {
                b.push(T_OPS);
                b.reserve(4 + ops.iter().map(|op| 4 + op.len()).sum::<usize>());
                b.extend_from_slice(&(ops.len() as u32).to_le_bytes());
                for op in ops {
                    b.extend_from_slice(&(op.len() as u32).to_le_bytes());
                    b.extend_from_slice(op);
                }
            }
            Message::WantChunks { credit, ids } => {
                b.push(T_WANT_CHUNKS);
                b.extend_from_slice(&credit.to_le_bytes());
                b.extend_from_slice(&(ids.len() as u16).to_le_bytes());
                for id in ids {
                    b.extend_from_slice(id);
                }
            }
            Message::Chunks { chunks } => {
                b.push(T_CHUNKS);
                b.reserve(4 + chunks.iter().map(|(_, c)| 36 + c.len()).sum::<usize>());
                b.extend_from_slice(&(chunks.len() as u32).to_le_bytes());
                for (id, bytes) in chunks {
                    b.extend_from_slice(id);
                    b.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                    b.extend_from_slice(bytes);
                }
            }
            Message::WantChunkIds { ops } => {
                b.push(T_WANT_CHUNK_IDS);
                b.extend_from_slice(&(ops.len() as u16).to_le_bytes());
                for op in ops {
                    b.extend_from_slice(&op.0);
                }
            }
            Message::ChunkIds { entries } => {
                b.push(T_CHUNK_IDS);
                b.extend_from_slice(&(entries.len() as u16).to_le_bytes());
                for (op, ids) in entries {
                    b.extend_from_slice(&op.0);
                    match ids {
                        None => b.push(0),
                        Some(ids) => {
                            b.push(1);
                            b.extend_from_slice(&(ids.len() as u32).to_le_bytes());
                            for id in ids {
                                b.extend_from_slice(id);
                            }
                        }
                    }
                }
            }
            Message::Bye { reason } => {
                b.push(T_BYE);
                let r = &reason.as_bytes()[..reason.len().min(1024)];
                b.extend_from_slice(&(r.len() as u16).to_le_bytes());
                b.extend_from_slice(r);
            }
        }
        b
    }

    pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
        if bytes.len() > MESSAGE_BYTES_MAX {
            return Err(WireError::TooLarge(bytes.len()));
        }
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != WIRE_VERSION {
            return Err(WireError::Version(version));
        }
        let msg = match r.u8()? {
            T_HELLO => Message::Hello {
                proto: r.u32()?,
                vault: VaultId(r.array()?),
                device: DeviceId(r.array()?),
                vv: r.vv()?,
            },
            T_HAVE => Message::Have { vv: r.vv()? },
            T_WANT => {
                let credit = r.u32()?;
                let n = r.u16()? as usize;
                if n > WANT_RANGES_MAX {
                    return Err(WireError::Invalid(format!("{n} ranges in one Want")));
                }
                let mut ranges = Vec::with_capacity(n);
                for _ in 0..n {
                    let range = Range {
                        author: DeviceId(r.array()?),
                        from: r.u64()?,
                        to: r.u64()?,
                        head: OpId(r.array()?),
                    };
                    if range.from == 0 || range.from > range.to {
                        return Err(WireError::Invalid("an empty range".into()));
                    }
                    ranges.push(range);
                }
                Message::Want { credit, ranges }
            }
            T_OPS => {
                let n = r.u32()? as usize;
                let mut ops = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let len = r.u32()? as usize;
                    if len > OP_BYTES_MAX {
                        return Err(WireError::Invalid(format!("an op of {len} bytes")));
                    }
                    ops.push(r.take(len)?.to_vec());
                }
                Message::Ops { ops }
            }
            T_WANT_CHUNKS => {
                let credit = r.u32()?;
                let n = r.u16()? as usize;
                if n > WANT_CHUNKS_MAX {
                    return Err(WireError::Invalid(format!("{n} chunks in one WantChunks")));
                }
                let mut ids = Vec::with_capacity(n);
                for _ in 0..n {
                    ids.push(r.array()?);
                }
                Message::WantChunks { credit, ids }
            }
            T_CHUNKS => {
                let n = r.u32()? as usize;
                let mut chunks = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    let id = r.array()?;
                    let len = r.u32()? as usize;
                    if len > CHUNK_BYTES_MAX {
                        return Err(WireError::Invalid(format!("a chunk of {len} bytes")));
                    }
                    chunks.push((id, r.take(len)?.to_vec()));
                }
                Message::Chunks { chunks }
            }
            T_WANT_CHUNK_IDS => {
                let n = r.u16()? as usize;
                if n > WANT_CHUNK_IDS_OPS_MAX {
                    return Err(WireError::Invalid(format!("{n} ops in one WantChunkIds")));
                }
                let mut ops = Vec::with_capacity(n);
                for _ in 0..n {
                    ops.push(OpId(r.array()?));
                }
                Message::WantChunkIds { ops }
            }
            T_CHUNK_IDS => {
                let n = r.u16()? as usize;
                if n > WANT_CHUNK_IDS_OPS_MAX {
                    return Err(WireError::Invalid(format!("{n} ops in one ChunkIds")));
                }
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let op = OpId(r.array()?);
                    let ids = match r.u8()? {
                        0 => None,
                        1 => {
                            let count = r.u32()? as usize;
                            if count > BLOB_CHUNKS_MAX {
                                return Err(WireError::Invalid(format!(
                                    "{count} chunk ids for one op"
                                )));
                            }
                            let mut ids = Vec::with_capacity(count);
                            for _ in 0..count {
                                ids.push(r.array()?);
                            }
                            Some(ids)
                        }
                        k => return Err(WireError::Invalid(format!("chunk ids marked {k}"))),
                    };
                    entries.push((op, ids));
                }
                Message::ChunkIds { entries }
            }
            T_BYE => {
                let len = r.u16()? as usize;
                let reason = String::from_utf8_lossy(r.take(len)?).into_owned();
                Message::Bye { reason }
            }
            t => return Err(WireError::UnknownType(t)),
        };
        if !r.0.is_empty() {
            return Err(WireError::Invalid("bytes after the message".into()));
        }
        Ok(msg)
    }
}

fn put_vv(b: &mut Vec<u8>, vv: &VersionVector) {
    let bytes = vv.to_bytes();
    b.extend_from_slice(&((bytes.len() / 72) as u32).to_le_bytes());
    b.extend_from_slice(&bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        Ok(self.take(N)?.try_into().expect("length taken"))
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn vv(&mut self) -> Result<VersionVector, WireError> {
        let n = self.u32()? as usize;
        if n > VV_ENTRIES_MAX {
            return Err(WireError::Invalid(format!(
                "a version vector of {n} entries"
            )));
        }
        let bytes = self.take(n * 72)?;
        VersionVector::from_bytes(bytes)
            .map_err(|_| WireError::Invalid("a version vector that is not canonical".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Message> {
        let mut vv = VersionVector::new();
        vv.set(DeviceId([1; 32]), 7, OpId([2; 32]));
        vec![
            Message::Hello {
                proto: PROTO,
                vault: VaultId([3; 16]),
                device: DeviceId([4; 32]),
                vv: vv.clone(),
            },
            Message::Have { vv },
            Message::Want {
                credit: 1 << 20,
                ranges: vec![Range {
                    author: DeviceId([1; 32]),
                    from: 3,
                    to: 7,
                    head: OpId([2; 32]),
                }],
            },
            Message::Ops {
                ops: vec![vec![9; 10], vec![]],
            },
            Message::WantChunks {
                credit: 1 << 20,
                ids: vec![[3; 32], [4; 32]],
            },
            Message::Chunks {
                chunks: vec![([5; 32], vec![1, 2, 3]), ([6; 32], vec![])],
            },
            Message::WantChunkIds {
                ops: vec![OpId([7; 32]), OpId([8; 32])],
            },
            Message::ChunkIds {
                entries: vec![
                    (OpId([7; 32]), Some(vec![[9; 32], [10; 32]])),
                    (OpId([8; 32]), None),
                    (OpId([11; 32]), Some(vec![])),
                ],
            },
            Message::Bye {
                reason: "bye".into(),
            },
        ]
    }

    #[test]
    fn messages_round_trip() {
        for m in samples() {
            assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn every_prefix_and_flip_is_an_error_or_a_message_never_a_panic() {
        for m in samples() {
            let b = m.encode();
            for n in 0..b.len() {
                assert!(Message::decode(&b[..n]).is_err(), "{m:?} cut at {n}");
            }
            for i in 0..b.len() {
                let mut x = b.clone();
                x[i] ^= 0xff;
                let _ = Message::decode(&x);
            }
        }
        assert_eq!(Message::decode(&[2, 1]), Err(WireError::Version(2)));
        assert_eq!(Message::decode(&[1, 99]), Err(WireError::UnknownType(99)));
        let huge = vec![0u8; MESSAGE_BYTES_MAX + 1];
        assert!(matches!(
            Message::decode(&huge),
            Err(WireError::TooLarge(_))
        ));
    }
}
