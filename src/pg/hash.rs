//! PostgreSQL's hash of text, `hashtextextended(text, 0)`: the shard key of a row whose key is not
//! an integer (see `tracking::integer_key`).

use std::ffi::c_int;

extern "C" {
    /// The server's hash of bytes (src/common/hashfn.c), which `hashtextextended` applies to a
    /// text's bytes under a deterministic collation. Pure arithmetic: it cannot raise an error.
    fn hash_bytes_extended(k: *const u8, keylen: c_int, seed: u64) -> u64;
}

/// `hashtextextended(s, 0)`, as a bigint.
pub fn text_hash(s: &str) -> i64 {
    let len = c_int::try_from(s.len()).expect("a key fits in a text datum (under 1 GB)");
    // SAFETY: the function reads exactly `len` bytes from the pointer, all of them `s`'s, and
    // keeps nothing.
    let hash = unsafe { hash_bytes_extended(s.as_ptr(), len, 0) };
    hash as i64
}
