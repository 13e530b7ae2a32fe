//! The `carewatch` program, built by this package so its end-to-end tests
//! can start, stop and kill real server processes (`CARGO_BIN_EXE_…`).

fn main() -> std::process::ExitCode {
    carewatch_cli::commands::main()
}
