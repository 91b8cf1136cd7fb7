//! The PostgreSQL interface: the only place with `unsafe`. Each file wraps one part of the
//! server's C API in small safe functions, with the reason each `unsafe` block is sound:
//!
//! - `jsonb`: jsonb values as datums, answers built as jsonb, and the answer memory context;
//! - `args`: `regclass`, `name` and `jsonb` arguments;
//! - `param`: statement parameters with the lifetime of their memory;
//! - `kept`: statements planned once per backend and kept, and a row reader that fails loudly;
//! - `values`: type input and output functions, domains and array types;
//! - `lookup`: syscache lookups (the extension's tables, names, owners);
//! - `security`: write rights, the read-only guard, row-level security, acting as an owner,
//!   advisory locks;
//! - `subxact`: subtransactions and caught errors;
//! - `memory`: scratch memory contexts;
//! - `relcache`: relcache invalidation callbacks;
//! - `xact`: the transaction's clock, relation locks and invalidations;
//! - `extension`: which of the extension's tables pg_dump saves;
//! - `hash`: PostgreSQL's hash of text.

pub mod args;
pub mod extension;
pub mod hash;
pub mod json;
pub mod jsonb;
pub mod kept;
pub mod lookup;
pub mod memory;
pub mod param;
pub mod relcache;
pub mod security;
pub mod subxact;
pub mod values;
pub mod xact;
