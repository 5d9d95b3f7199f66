//! Where a pipeline's output goes.

pub mod clickhouse;
pub mod dead_letter;
pub mod row_binary;
