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

/// The entry point both benches share: finds the binaries (a smoke run without them is skipped,
/// a full run fails with exit 2), then runs `body` on two Tokio workers — the load generator
/// shares the machine with the gateway, as on a real 2-core host — within `limit`, and exits 1
/// listing every failure. Dropping the runtime kills any child still running (kill_on_drop).
pub fn run_bench<F>(bench: &str, full: bool, limit: std::time::Duration, body: impl FnOnce(Bins) -> F)
where
    F: std::future::Future<Output = Result<(), super::report::Failures>>,
{
    let bins = match find_bins(full, bench) {
        Ok(b) => b,
        // Cargo builds both binaries for the bench unless their features are off; a smoke run
        // without them has nothing to check.
        Err(e) if !full => {
            eprintln!("{bench}: smoke run skipped: {e}");
            return;
        }
        Err(e) => {
            eprintln!("{bench}: {e}");
            std::process::exit(2);
        }
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        tokio::time::timeout(limit, body(bins)).await.unwrap_or_else(|_| {
            Err(super::report::Failures(vec![format!("did not finish within {} s", limit.as_secs())]))
        })
    });
    drop(runtime);
    if let Err(super::report::Failures(errors)) = result {
        for e in errors {
            eprintln!("{bench}: FAILED: {e}");
        }
        std::process::exit(1);
    }
}
