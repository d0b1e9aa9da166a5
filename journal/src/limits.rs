//! Every bound the journal enforces, with its unit. Checked where data enters.

/// Largest envelope accepted, in bytes: a 1 MiB text plus headroom.
pub const OP_BYTES_MAX: usize = 1024 * 1024 + 64 * 1024;
/// Largest stored chunk (nonce + ciphertext + tag), in bytes.
pub const CHUNK_BYTES_MAX: usize = 256 * 1024 + 64;
/// Most deps one op may name.
pub const DEPS_MAX: usize = 1024;
/// Longest vault-relative path, in UTF-8 bytes.
pub const PATH_BYTES_MAX: usize = 1024;
/// How far an op's hlc may run ahead of local wall time before it waits.
pub const HLC_FUTURE_SKEW_MAX_MS: u64 = 600_000;
/// Largest text file; bigger files, or files that are not UTF-8, are blobs.
pub const TEXT_BYTES_MAX: usize = 1024 * 1024;
/// FastCDC parameters for blobs, in bytes.
pub const CHUNK_MIN_BYTES: usize = 16 * 1024;
pub const CHUNK_AVG_BYTES: usize = 64 * 1024;
pub const CHUNK_MAX_BYTES: usize = 256 * 1024;
/// Most chunks one blob may list, so its op stays under `OP_BYTES_MAX`
/// (each chunk reference is about 100 bytes).
pub const BLOB_CHUNKS_MAX: usize = 10_000;
/// Files larger than this are chunked coarser, within the same chunk size
/// limit, so their chunk list still fits an op: at the 64 KiB average,
/// `BLOB_CHUNKS_MAX` chunks hold only about 600 MiB.
pub const LARGE_BLOB_BYTES: u64 = 512 * 1024 * 1024;
/// FastCDC parameters for files over `LARGE_BLOB_BYTES`, in bytes.
pub const LARGE_CHUNK_MIN_BYTES: usize = 64 * 1024;
pub const LARGE_CHUNK_AVG_BYTES: usize = 192 * 1024;
/// Largest file the scanner records, in bytes: at the large-file average
/// chunk size, 8,192 chunks, well inside `BLOB_CHUNKS_MAX`, so content
/// that chunks finer than average still fits. A larger file is skipped
/// with a warning (not read, not recorded) until ops can list chunks
/// indirectly.
pub const BLOB_BYTES_MAX: u64 = 1536 * 1024 * 1024;
/// Ops per checkpoint of the replayed state.
pub const CHECKPOINT_INTERVAL_OPS: u64 = 1024;
/// Most ops held back in the pending buffer (missing prev/deps, future hlc).
pub const PENDING_OPS_MAX: usize = 100_000;
