//! Where events come from.

pub mod kafka;
