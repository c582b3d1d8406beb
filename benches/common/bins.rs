//! Where the benchmarks find `tollgate` and `tollgate-fixture`.

use std::path::{Path, PathBuf};

pub struct Bins {
    pub tollgate: PathBuf,
    pub fixture: PathBuf,
}

/// The binaries of the profile this bench was built in: `current_exe()` is
/// `target/<profile>/deps/<bench>-<hash>`, so they are in its grandparent directory. In smoke
/// mode `target/debug/` and cargo's compiled-in paths are accepted too, so a missing release
/// build never fails `cargo test`.
pub fn find_bins(full: bool, bench: &str) -> Result<Bins, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe.parent().and_then(Path::parent).map(Path::to_path_buf);
    let mut dirs: Vec<PathBuf> = profile_dir.iter().cloned().collect();
    if !full && let Some(target) = profile_dir.as_deref().and_then(Path::parent) {
        dirs.push(target.join("debug"));
    }
    for dir in &dirs {
        let (tollgate, fixture) = (dir.join("tollgate"), dir.join("tollgate-fixture"));
        if tollgate.is_file() && fixture.is_file() {
            return Ok(Bins { tollgate, fixture });
        }
    }
    if !full
        && let (Some(t), Some(f)) =
            (option_env!("CARGO_BIN_EXE_tollgate"), option_env!("CARGO_BIN_EXE_tollgate-fixture"))
        && Path::new(t).is_file()
        && Path::new(f).is_file()
    {
        return Ok(Bins { tollgate: t.into(), fixture: f.into() });
    }
    Err(format!(
        "tollgate and tollgate-fixture not found in {}; build them first:\n    \
         cargo build --release --bins && cargo bench --bench {bench}",
        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(" or ")
    ))
}
