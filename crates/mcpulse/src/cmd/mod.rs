pub mod bench;
pub mod meter;
