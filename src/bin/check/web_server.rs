//! stub
pub fn tests() -> Vec<crate::report::Test> {
    vec![]
}
pub fn write_files(_d: &std::path::Path, _o: bool, _s: u64) -> anyhow::Result<()> {
    Ok(())
}
