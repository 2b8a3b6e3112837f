//! Set-up shared by the benchmarks (`#[path]`-included).

// The same allocator as the `sorcha-peer` binary (see its main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A multi-threaded runtime, with the open-file limit raised to the hard
/// limit: a hundred in-process peers hold thousands of sockets.
pub fn runtime() -> tokio::runtime::Runtime {
    if let Ok((soft, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
        let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, hard.max(soft), hard);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}
