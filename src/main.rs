//! The `warren` binary: parse the configuration, start the broker, stop on a signal.

use clap::Parser;
use warren::Config;

/// jemalloc, with background threads that give freed memory back to the
/// system within seconds: a broker's memory swings with its backlogs, and
/// glibc's allocator kept gigabytes after a backlog drained.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Stack of each runtime thread. Client-controlled nesting is bounded and
/// walked without recursion in Warren's own code, but derived `Clone`/`Drop`
/// of the deepest accepted argument tables still recurse: 8 MiB leaves a wide
/// margin over what they need (a test checks 2 MiB suffices).
const THREAD_STACK: usize = 8 << 20;

fn main() -> std::process::ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(warren::run(Config::parse())),
        Err(e) => {
            eprintln!("warren: cannot start the runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
