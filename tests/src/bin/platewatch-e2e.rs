//! The `platewatch` command, built inside the tests package so its end-to-end tests can run
//! it as a child process (`CARGO_BIN_EXE_platewatch-e2e`).

fn main() -> std::process::ExitCode {
    platewatch_cli::main_with_args()
}
