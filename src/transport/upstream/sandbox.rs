//! What a stdio upstream's process may see and use: a clean environment (an allowlist plus its
//! configured `env`), resource limits and no new privileges.
//!
//! The limits and `PR_SET_NO_NEW_PRIVS` must be set inside the child, between `fork` and
//! `exec`, so they hold from its first instruction (setting them on the pid after spawn would
//! leave a window, and no-new-privs cannot be set from outside at all). That takes
//! `Command::pre_exec`, which is `unsafe`: [`confine`] is the one place in the crate that uses
//! it, kept to async-signal-safe system calls with nothing allocated after the fork.

use crate::config::{ProcessLimits, UpstreamConfig};
use crate::secrets::Secret;
use nix::sys::resource::{Resource, getrlimit, rlim_t, setrlimit};
use std::collections::BTreeMap;
use std::ffi::OsString;

/// The child's whole environment: inherited variables the upstream's allowlist names, then its
/// configured `env` with references resolved now (so a rotated secret file is read again on
/// every start). Also returns the values that came from references, for scrubbing. Errors name
/// the variable and its reference, never a value.
pub fn environment(config: &UpstreamConfig) -> Result<(BTreeMap<OsString, OsString>, Vec<Secret>), String> {
    let mut env: BTreeMap<OsString, OsString> =
        std::env::vars_os().filter(|(name, _)| name.to_str().is_some_and(|n| config.inherits(n))).collect();
    let mut secrets = Vec::new();
    for (name, value) in &config.env {
        let secret = value.resolve().map_err(|e| format!("env.{name} ({value}): {e}"))?;
        env.insert(name.into(), secret.expose().into());
        if value.is_reference() {
            secrets.push(secret);
        }
    }
    Ok((env, secrets))
}

/// One limit to apply in the child: (resource, soft, hard).
type Limit = (Resource, rlim_t, rlim_t);

/// The limits to set, clamped to the gateway's own hard limits (an unprivileged process cannot
/// raise those, and a failed `setrlimit` would stop the child from starting at all).
fn planned(limits: &ProcessLimits) -> [Option<Limit>; 3] {
    let clamp = |resource: Resource, soft: u64, hard: u64| -> Option<Limit> {
        let ceiling = getrlimit(resource).map(|(_, h)| h).unwrap_or(rlim_t::MAX);
        Some((resource, soft.min(ceiling), hard.min(ceiling)))
    };
    let mib = |mb: u64| mb.saturating_mul(1024 * 1024);
    [
        limits.memory_mb.and_then(|mb| clamp(Resource::RLIMIT_DATA, mib(mb), mib(mb))),
        // The soft limit sends SIGXCPU (a program may log and exit); the hard one, a second
        // later, SIGKILL.
        limits.cpu_secs.and_then(|s| clamp(Resource::RLIMIT_CPU, s, s.saturating_add(1))),
        limits.open_files.and_then(|n| clamp(Resource::RLIMIT_NOFILE, n, n)),
    ]
}

/// Makes the child set `limits` on itself and turn on no-new-privileges before it `exec`s.
/// No-new-privileges is best effort (kernels before 3.5, some seccomp setups refuse it): it
/// narrows what a compromised server could gain through set-uid programs, and its absence must
/// not keep a server from starting. A limit that cannot be set fails the spawn instead.
#[allow(unsafe_code)]
pub fn confine(cmd: &mut tokio::process::Command, limits: &ProcessLimits) {
    // Everything that allocates happens here, in the parent.
    let planned = planned(limits);
    // SAFETY: the closure runs in the forked child before `exec`, where only async-signal-safe
    // work is allowed. It reads a fixed-size array captured by value (no allocation, no locks),
    // and makes only `setrlimit(2)` and `prctl(2)` system calls through nix's thin wrappers;
    // an error becomes an `io::Error` from its raw errno, which does not allocate either.
    unsafe {
        cmd.pre_exec(move || {
            for (resource, soft, hard) in planned.iter().flatten() {
                setrlimit(*resource, *soft, *hard).map_err(std::io::Error::from)?;
            }
            let _ = nix::sys::prctl::set_no_new_privs();
            Ok(())
        });
    }
}

/// Why the child's exit may have been the limits at work: a hint for the upstream error.
pub fn limit_hint(limits: &ProcessLimits, signal: Option<i32>) -> Option<String> {
    use nix::sys::signal::Signal;
    let signal = Signal::try_from(signal?).ok()?;
    let set: Vec<String> = [
        ("memory_mb", limits.memory_mb, matches!(signal, Signal::SIGABRT | Signal::SIGSEGV | Signal::SIGKILL)),
        ("cpu_secs", limits.cpu_secs, matches!(signal, Signal::SIGXCPU | Signal::SIGKILL)),
        ("open_files", limits.open_files, matches!(signal, Signal::SIGABRT)),
    ]
    .into_iter()
    .filter_map(|(key, value, fits)| value.filter(|_| fits).map(|v| format!("{key} = {v}")))
    .collect();
    (!set.is_empty()).then(|| format!("it may have hit its [upstream.limits] ({})", set.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretValue;

    #[test]
    fn only_allowlisted_and_configured_variables_reach_the_child() {
        let mut u = UpstreamConfig { name: "a".into(), command: Some("x".into()), ..Default::default() };
        u.inherit_env = vec!["CARGO_PKG_*".into()];
        u.env.insert("MODE".into(), SecretValue::literal("fast"));
        let (env, secrets) = environment(&u).unwrap();
        assert!(secrets.is_empty(), "a literal is not a secret to scrub");
        assert_eq!(env.get(&OsString::from("MODE")), Some(&OsString::from("fast")));
        assert!(env.contains_key(&OsString::from("PATH")));
        // Set by cargo for tests, so present in our environment, and not allowlisted.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        assert!(!env.contains_key(&OsString::from("CARGO_MANIFEST_DIR")));
        assert!(env.keys().any(|k| k.to_string_lossy().starts_with("CARGO_PKG_")), "prefix pattern inherits");
    }

    #[test]
    fn a_missing_reference_names_the_variable_and_the_reference() {
        let mut u = UpstreamConfig { name: "a".into(), command: Some("x".into()), ..Default::default() };
        u.env.insert("API_TOKEN".into(), SecretValue::parse("env:TOLLGATE_SURELY_UNSET_VAR").unwrap());
        let e = environment(&u).unwrap_err();
        assert!(e.contains("env.API_TOKEN") && e.contains("env:TOLLGATE_SURELY_UNSET_VAR"), "{e}");
    }

    #[test]
    fn limits_are_planned_within_the_gateways_own() {
        let limits = ProcessLimits { memory_mb: Some(64), cpu_secs: Some(5), open_files: Some(u64::MAX) };
        let [mem, cpu, files] = planned(&limits);
        assert_eq!(mem.map(|l| l.1), Some(64 * 1024 * 1024));
        assert_eq!(cpu.map(|l| (l.1, l.2)), Some((5, 6)));
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(files.map(|l| l.2), Some(hard), "clamped to what we may set");
        assert!(planned(&ProcessLimits::default()).iter().all(Option::is_none));
    }

    #[test]
    fn the_hint_names_the_limits_that_fit_the_signal() {
        let limits = ProcessLimits { memory_mb: Some(64), cpu_secs: None, open_files: None };
        let hint = limit_hint(&limits, Some(6)).unwrap();
        assert!(hint.contains("memory_mb = 64"), "{hint}");
        assert!(limit_hint(&limits, Some(15)).is_none(), "SIGTERM is not a limit");
        assert!(limit_hint(&ProcessLimits::default(), Some(9)).is_none());
    }
}
