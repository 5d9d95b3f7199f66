//! The analyst query library: `sql/queries/*.sql`, embedded.

/// One parameter of an [`AnalystQuery`], bound to the next `?` in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryParam {
    /// Name, for documentation and command-line flags.
    pub name: &'static str,
    /// ClickHouse type the value is read as (`String`, `UInt32`, `Date`, `DateTime`).
    pub ty: &'static str,
    /// What it means.
    pub description: &'static str,
}

/// A read-only query for analysts. Parameters are client-side `?`
/// placeholders: bind them in order with the clickhouse crate's
/// [`Query::bind`](clickhouse::query::Query::bind), which escapes each value
/// (ClickHouse 18.16 has no server-side parameters).
///
/// ```no_run
/// # async fn demo(client: clickhouse::Client) -> clickhouse::error::Result<()> {
/// let q = livepulse_sql::query("top_live_streams").expect("in the library");
/// let rows: Vec<(String, u64, u64, u32)> =
///     client.query(q.sql).bind(60u32).bind(5u32).bind(10u32).fetch_all().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnalystQuery {
    /// The file name without `.sql`.
    pub name: &'static str,
    /// One line on what it answers.
    pub description: &'static str,
    /// Parameters in bind order.
    pub params: &'static [QueryParam],
    /// The statement (without the header comment, without a trailing `;`).
    pub sql: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/queries.rs"));

/// Every analyst query, by file name.
pub const QUERIES: &[AnalystQuery] = EMBEDDED_QUERIES;

/// The analyst query called `name`.
///
/// ```
/// assert!(livepulse_sql::query("chat_activity").is_some());
/// assert!(livepulse_sql::query("nope").is_none());
/// ```
pub fn query(name: &str) -> Option<&'static AnalystQuery> {
    QUERIES.iter().find(|q| q.name == name)
}
