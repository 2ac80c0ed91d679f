use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
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
