pub mod agent;
pub mod bench;
pub mod forecast;
pub mod meter;
pub mod registry;
pub mod simulate;
pub mod up;
