//! With the `crs` feature: embeds the OWASP CRS request rules from `$CRS_DIR` (default
//! `../shared/crs` beside the repository) into the module, in CRS load order, with
//! `crs-setup.conf.example` and the `.data` files the rules read. Envoy gives a filter no file
//! system, so the rules travel inside the Wasm module. RESPONSE-* files are left out (the
//! filter inspects requests only).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CRS_DIR");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bundle = out.join("crs_bundle.rs");
    if env::var_os("CARGO_FEATURE_CRS").is_none() {
        return;
    }
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let crs_dir = match env::var_os("CRS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => manifest.join("../../../shared/crs"),
    };
    let crs_dir = fs::canonicalize(&crs_dir).unwrap_or_else(|error| {
        panic!("feature `crs`: CRS directory {} not found ({error}); set CRS_DIR", crs_dir.display())
    });
    let rules_dir = crs_dir.join("rules");
    let setup = crs_dir.join("crs-setup.conf.example");
    println!("cargo:rerun-if-changed={}", rules_dir.display());
    println!("cargo:rerun-if-changed={}", setup.display());
    let mut rule_files: Vec<PathBuf> = fs::read_dir(&rules_dir)
        .unwrap_or_else(|error| panic!("feature `crs`: cannot list {}: {error}", rules_dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            let name = file_name(path);
            name.starts_with("REQUEST-9") && name.ends_with(".conf")
        })
        .collect();
    // CRS's load order is the file names' order (REQUEST-901 … REQUEST-949, 999).
    rule_files.sort();
    assert!(!rule_files.is_empty(), "feature `crs`: no REQUEST-9*.conf in {}", rules_dir.display());
    let mut data_names: Vec<String> = Vec::new();
    for path in &rule_files {
        println!("cargo:rerun-if-changed={}", path.display());
        let text = fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        for line in text.lines().filter(|line| !line.trim_start().starts_with('#')) {
            for marker in ["@pmFromFile ", "@pmf "] {
                let Some(at) = line.find(marker) else { continue };
                let rest = &line[at + marker.len()..];
                let names = rest.split('"').next().unwrap_or_default();
                for name in names.split_whitespace() {
                    if !data_names.iter().any(|known| known == name) {
                        data_names.push(name.to_owned());
                    }
                }
            }
        }
    }
    data_names.sort();
    let mut code = String::new();
    let _ = writeln!(code, "/// `crs-setup.conf.example` as CRS ships it.");
    let _ = writeln!(code, "pub const SETUP: (&str, &str) = (\"crs-setup.conf.example\", include_str!({:?}));", setup);
    let _ = writeln!(code, "/// The REQUEST-9xx rule files, in load order.");
    let _ = writeln!(code, "pub const RULE_FILES: &[(&str, &str)] = &[");
    for path in &rule_files {
        let _ = writeln!(code, "    ({:?}, include_str!({:?})),", file_name(path), path);
    }
    let _ = writeln!(code, "];");
    let _ = writeln!(code, "/// The `.data` files the rules read with `@pmFromFile`.");
    let _ = writeln!(code, "pub const DATA_FILES: &[(&str, &str)] = &[");
    for name in &data_names {
        let path = rules_dir.join(name);
        assert!(path.is_file(), "feature `crs`: {} is read by a rule but missing", path.display());
        println!("cargo:rerun-if-changed={}", path.display());
        let _ = writeln!(code, "    ({:?}, include_str!({:?})),", name, path);
    }
    let _ = writeln!(code, "];");
    let version = fs::read_to_string(&setup)
        .ok()
        .and_then(|text| text.lines().find_map(|line| line.split("ver:'OWASP_CRS/").nth(1).map(str::to_owned)))
        .and_then(|rest| rest.split('\'').next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    let _ = writeln!(code, "/// The CRS version (from crs-setup.conf.example).");
    let _ = writeln!(code, "pub const VERSION: &str = {version:?};");
    fs::write(&bundle, code).unwrap_or_else(|error| panic!("cannot write {}: {error}", bundle.display()));
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}
