#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    drs_runbook::cli::main()
}
