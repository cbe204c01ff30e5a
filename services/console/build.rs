//! Bundles the console's front end (`web/`: Preact and htm, from the npm
//! registry at the versions `web/package-lock.json` pins) with esbuild into
//! `$OUT_DIR/web/dist`, where `src/assets.rs` embeds it: the console needs
//! no Node.js at run time, only to build.
//!
//! The work happens in a copy under `$OUT_DIR`, so the source tree gets no
//! `node_modules`; `npm ci` runs again only when the lock file changes.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let web = here.join("web");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("web");
    for f in [
        "web/src",
        "web/index.html",
        "web/package.json",
        "web/package-lock.json",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
    std::fs::create_dir_all(out.join("src")).expect("OUT_DIR is writable");
    let lock = std::fs::read(web.join("package-lock.json")).expect("web/package-lock.json");
    let installed = std::fs::read(out.join("package-lock.json")).ok();
    copy(&web.join("package.json"), &out.join("package.json"));
    copy(
        &web.join("package-lock.json"),
        &out.join("package-lock.json"),
    );
    for entry in std::fs::read_dir(web.join("src")).expect("web/src") {
        let p = entry.expect("web/src entry").path();
        copy(&p, &out.join("src").join(p.file_name().expect("a file")));
    }
    copy(&web.join("index.html"), &out.join("index.html"));
    if installed.as_deref() != Some(&lock[..]) || !out.join("node_modules").exists() {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&out),
            "npm ci",
        );
    }
    run(
        Command::new(out.join("node_modules/.bin/esbuild"))
            .args([
                "src/main.js",
                "--bundle",
                "--minify",
                "--format=esm",
                "--target=es2020",
                "--log-level=warning",
                "--outdir=dist",
            ])
            .current_dir(&out),
        "esbuild",
    );
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
}

fn run(cmd: &mut Command, what: &str) {
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{what} failed ({s}) building the console's front end"),
        Err(e) => panic!(
            "{what}: {e}. The console's front end is built with Node.js and npm (Debian: apt install nodejs npm; scripts/setup.sh installs them)"
        ),
    }
}
