//! `carewatch`: the Carewatch server and its command-line tools.

fn main() -> std::process::ExitCode {
    carewatch_cli::commands::main()
}
