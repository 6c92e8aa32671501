//! `shopctl`: see [`shopctl::cli::Cli`] (`shopctl --help`).

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = shopctl::cli::Cli::parse();
    match shopctl::cli::run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("shopctl: {e}");
            std::process::exit(2);
        }
    }
}
