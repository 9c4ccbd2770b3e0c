//! Writes the seeds of every target (fuzz/src/seeds.rs) to `fuzz/corpus/<target>/<hash>`, the
//! directories `cargo fuzz run <target>` starts from.

use std::hash::{DefaultHasher, Hash, Hasher};

fn main() -> std::io::Result<()> {
    let root = wasm_shield_fuzz::seeds::repo_root();
    let corpus = root.join("fuzz/corpus");
    for (target, seeds) in wasm_shield_fuzz::seeds::collect(&root) {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        for seed in &seeds {
            let mut hasher = DefaultHasher::new();
            seed.hash(&mut hasher);
            std::fs::write(dir.join(format!("seed-{:016x}", hasher.finish())), seed)?;
        }
        println!("{target}: {} seeds", seeds.len());
    }
    Ok(())
}
