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

// The author's side of an Edit (`replay::make_patch`). Recording a change
// runs on the daemon's one vault thread, so it must take bounded time; a
// Replace is always a correct fallback. None of these touch replay, which
// applies the stored patch text as it is.

/// Old and new texts of at most this many bytes together are diffed
/// exactly, with no timeout, as PROTOCOL.md §8.3 specifies (its golden
/// vectors, the simulator). The exact diff costs up to the square of the
/// size: replacing 8 KiB by 8 KiB takes 50 ms for lines like the old
/// ones, 0.23–0.36 s for unrelated random text (2-core VM, release): no
/// more than the bounded path's worst case.
pub const PATCH_EXACT_BYTES_MAX: usize = 16 * 1024;
/// Above [`PATCH_EXACT_BYTES_MAX`]: when lines the old text lacks make
/// more than this share of the new text's bytes, the change is a rewrite
/// and becomes a Replace without a diff, in percent.
pub const PATCH_NEW_LINES_PCT_MAX: u64 = 50;
/// Above [`PATCH_EXACT_BYTES_MAX`]: the most work `patch_make` is given, in
/// non-equal diffs × bytes of both texts. It copies the text once per diff
/// and searches it once per hunk: about 1 ns a unit, so 100 ms.
pub const PATCH_MAKE_WORK_MAX: usize = 100_000_000;
/// Above [`PATCH_EXACT_BYTES_MAX`]: the diff timeout a caller that must
/// stay responsive (the bridge's scanner) gives `make_patch_within`. When
/// it runs out, each block still being diffed becomes one deletion and
/// one insertion: a correct patch, just a larger one.
pub const PATCH_DIFF_TIMEOUT_MS: u32 = 250;
