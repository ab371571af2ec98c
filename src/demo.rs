//! Demo: placeholder.
pub async fn run() -> Result<(), std::io::Error> {
    Ok(())
}
