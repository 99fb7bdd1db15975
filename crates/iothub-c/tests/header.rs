//! `include/iothub.h` is generated from this crate by cbindgen. This test regenerates it and
//! fails when the committed header differs; `IOTHUB_BLESS=1` rewrites the committed copy.

use std::path::PathBuf;

#[test]
fn committed_header_is_current() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let header = crate_dir.join("../../include/iothub.h");
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    if std::env::var_os("IOTHUB_BLESS").is_some() {
        std::fs::write(&header, &generated).expect("write include/iothub.h");
        return;
    }
    let committed = std::fs::read(&header).unwrap_or_default();
    assert!(
        committed == generated,
        "include/iothub.h is stale: run `IOTHUB_BLESS=1 cargo test -p iothub-c --test header` and commit it"
    );
}
