#[actix_web::main]
async fn main() -> std::process::ExitCode {
    mcpo_core::server::run_binary("mcpo-publisher", mcpo_publisher::run).await
}
