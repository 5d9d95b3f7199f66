//! Support for the end-to-end tests: the batch oracle that recomputes the
//! streaming jobs' results from raw events, independently of the streaming
//! code (Polars instead of DataFusion, a whole-data-set group-by instead of
//! watermarks and incremental windows).

pub mod compare;
pub mod feed;
pub mod oracle;
pub mod report;
pub mod stack;
