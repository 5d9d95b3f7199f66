//! Where results go.

pub mod clickhouse;
