// A rebuild allocates and frees millions of small JSON nodes: mimalloc
// makes it about a third faster than glibc's allocator
// (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    mcpo_core::server::run_binary("mcpo-publisher", mcpo_publisher::run).await
}
