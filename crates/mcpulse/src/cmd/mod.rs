pub mod bench;
pub mod meter;
pub mod registry;
