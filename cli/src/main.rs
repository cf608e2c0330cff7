//! `platewatch`: scan images, folders, video and cameras for plates; evaluate accuracy on
//! labelled data; benchmark the on-device pipeline; run a self-contained demo.

fn main() -> std::process::ExitCode {
    platewatch_cli::main_with_args()
}
