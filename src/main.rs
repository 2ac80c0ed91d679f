use std::process::ExitCode;

use clap::Parser;

/// mimalloc, not glibc's malloc, and freed memory returned to the system
/// at once rather than after its default 10 ms delay, so that a reload or
/// a history build leaves no high-water mark behind (README, "Benchmark").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`, 15 in mimalloc's v2 and v3 headers (the sys
/// crate names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Before any other thread exists: options are not thread-safe to set.
    // SAFETY: a plain option write, on the only thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    let cli = okrd::cli::Cli::parse();
    okrd::telemetry::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(okrd::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", okrd::secrets::redact(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
