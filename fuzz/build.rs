//! Some pure code lives in src/ files that also use pgrx, which a fuzz target cannot link (the
//! Postgres symbols are only there inside a server). Until it moves to pgrx-free modules (see
//! README.md here), this copies the wanted items, by name, out of those files into OUT_DIR, so
//! the targets fuzz the extension's real code, not a copy that could drift. If an item is renamed
//! or moved, the build fails and says which.

use std::path::PathBuf;
use std::{env, fs};

use quote::ToTokens;

fn item_name(item: &syn::Item) -> Option<String> {
    Some(match item {
        syn::Item::Struct(s) => format!("struct {}", s.ident),
        syn::Item::Enum(e) => format!("enum {}", e.ident),
        syn::Item::Fn(f) => format!("fn {}", f.sig.ident),
        syn::Item::Const(c) => format!("const {}", c.ident),
        syn::Item::Impl(i) if i.trait_.is_none() => format!("impl {}", i.self_ty.to_token_stream()),
        _ => return None,
    })
}

/// Write to OUT_DIR/`out` the `header` and the items of src/`file` named in `wanted`.
fn extract(file: &str, wanted: &[&str], header: &str, out: &str) {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let path = manifest.join("..").join("src").join(file);
    println!("cargo:rerun-if-changed={}", path.display());
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    let mut code = format!("// Copied by fuzz/build.rs from src/{file}; do not edit.\n{header}\n");
    let mut found = vec![false; wanted.len()];
    for item in &ast.items {
        let Some(name) = item_name(item) else { continue };
        if let Some(i) = wanted.iter().position(|w| *w == name) {
            found[i] = true;
            code.push_str(&item.to_token_stream().to_string());
            code.push('\n');
        }
    }
    let missing: Vec<&str> = wanted.iter().zip(&found).filter(|(_, f)| !**f).map(|(w, _)| *w).collect();
    assert!(
        missing.is_empty(),
        "fuzz/build.rs: src/{file} no longer has {missing:?}; update the list in fuzz/build.rs \
         (or, once the code is in a pgrx-free module, include that module with #[path] in fuzz/src/lib.rs)"
    );
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    fs::write(out_dir.join(out), code).expect("writing the extracted code");
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    extract(
        "feed.rs",
        &["struct Position", "impl Position"],
        "use base64::engine::general_purpose::URL_SAFE_NO_PAD;\nuse base64::Engine;\nuse crate::error::SyncError;",
        "cursor.rs",
    );
    extract(
        "convert.rs",
        &["enum Shape", "fn input_text", "fn array_literal", "fn quote_element"],
        "use serde_json::Value;",
        "convert.rs",
    );
}
