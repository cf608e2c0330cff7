//! `platewatch`: scan images, folders, video and cameras for plates; evaluate accuracy on
//! labelled data; benchmark the on-device pipeline; run a self-contained demo.

// mimalloc instead of glibc malloc: `serve` answers many small-allocation requests from several
// threads (ingest spent about a fifth of its CPU in glibc malloc/free), and `scan` allocates
// per frame.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    platewatch_cli::main_with_args()
}
