//! A job's SQL, split into DataFusion's two aggregation phases so windows are
//! computed incrementally.
//!
//! DataFusion plans the job's `SELECT ... GROUP BY window_start, ...` once.
//! Each incoming batch then runs only the *partial* phase (its accumulators'
//! `update_batch`), giving accumulator *states* per pane and group; pane
//! states are combined with the `PartialReduce` phase, and a closing window
//! runs the *final* phase (`merge_batch` + `evaluate`) over the states of the
//! panes it spans, followed by whatever the SQL computes above the aggregate.
//! Raw events are never buffered or re-scanned.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::MemTable;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{SessionConfig, SessionContext};

/// Name under which a job's SQL sees its events, with a [`WINDOW_START`]
/// column added.
pub const WINDOW_EVENTS: &str = "window_events";
/// The group column holding the window start (epoch ms); the job's SQL must
/// group by it.
pub const WINDOW_START: &str = "window_start";
const BATCH: &str = "batch";

/// A job's SQL, ready to aggregate batches into states and states into rows.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use livepulse_contract::{record::Payload, topics};
/// use livepulse_pipelines::runtime::decode::{InputDecoder, input_schema};
/// use livepulse_pipelines::runtime::engine::IncrementalSql;
///
/// let schema = input_schema(&[topics::CHAT_EVENTS]).unwrap();
/// let sql = "SELECT window_start, stream_id, count(*) AS n FROM window_events GROUP BY window_start, stream_id";
/// let job = IncrementalSql::plan(sql, 10_000, schema.clone()).await.unwrap();
/// let mut decoder = InputDecoder::new(schema);
/// let mut states = Vec::new();
/// for (id, ts) in [("6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10", 1_000), ("7f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10", 2_000)] {
///     let record = format!(r#"{{"schema_version":1,"received_ms":5,"events":[{{"event_id":"{id}",
///         "ts":{ts},"stream_id":"s1","type":"chat","event":"like","viewer_id":"v"}}]}}"#);
///     decoder.append(Payload::Events, record.as_bytes(), 0, 0).unwrap();
///     // One state per batch, merged only when the window closes.
///     states.push(job.partial(decoder.finish().unwrap()).await.unwrap());
/// }
/// let rows = job.finish(states).await.unwrap();
/// assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
/// # }
/// ```
pub struct IncrementalSql {
    task: Arc<TaskContext>,
    /// The whole plan; its aggregate is swapped for the final phase.
    plan: Arc<dyn ExecutionPlan>,
    /// The partial phase over the plan's own scan: a template whose scan is
    /// swapped for each batch; its accessors give what the other phases need.
    partial: Arc<AggregateExec>,
    window_start: usize,
}

impl IncrementalSql {
    /// Plans `job_sql` (one `SELECT` over [`WINDOW_EVENTS`] grouped by
    /// [`WINDOW_START`]) for panes of `pane_ms`, over batches of `schema`
    /// (the job's input schema).
    pub async fn plan(job_sql: &str, pane_ms: i64, schema: SchemaRef) -> Result<Self> {
        // One thread: a pipeline instance uses one core and scales out by
        // Kafka partitions across instances instead.
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        livepulse_udfs::datafusion::register_all(&ctx);
        let empty = MemTable::try_new(schema, vec![vec![]])?;
        ctx.register_table(BATCH, Arc::new(empty))?;
        let sql = format!(
            "WITH {WINDOW_EVENTS} AS (\
               SELECT *, ts - (ts % {pane_ms}) AS {WINDOW_START} FROM {BATCH}\
             ) {job_sql}"
        );
        let plan = ctx.sql(&sql).await?.create_physical_plan().await?;
        let first = find_aggregate(&plan)
            .ok_or_else(|| DataFusionError::Plan("job SQL has no GROUP BY aggregate".into()))?;
        let partial = AggregateExec::try_new(
            AggregateMode::Partial,
            first.group_expr().clone(),
            first.aggr_expr().to_vec(),
            first.filter_expr().to_vec(),
            Arc::clone(first.input()),
            first.input_schema(),
        )?;
        let window_start = partial
            .schema()
            .index_of(WINDOW_START)
            .map_err(|_| DataFusionError::Plan(format!("job SQL must GROUP BY {WINDOW_START}")))?;
        Ok(Self {
            task: ctx.task_ctx(),
            plan,
            partial: Arc::new(partial),
            window_start,
        })
    }

    /// Schema of the accumulator states: the group columns, then each
    /// aggregate's state fields.
    pub fn state_schema(&self) -> SchemaRef {
        self.partial.schema()
    }

    /// The aggregates, in the order of their fields in [`Self::state_schema`]
    /// (after the [`Self::group_columns`]), each with whether it has a
    /// `FILTER`.
    pub fn aggregates(&self) -> impl Iterator<Item = (&AggregateFunctionExpr, bool)> {
        self.partial
            .aggr_expr()
            .iter()
            .zip(self.partial.filter_expr())
            .map(|(a, f)| (a.as_ref(), f.is_some()))
    }

    /// How many group columns lead [`Self::state_schema`].
    pub fn group_columns(&self) -> usize {
        self.partial.group_expr().expr().len()
    }

    /// Index of [`WINDOW_START`] in [`Self::state_schema`].
    pub fn window_start_column(&self) -> usize {
        self.window_start
    }

    /// Runs the partial phase over `batch` (in the input schema): one state
    /// row per (pane, group).
    pub async fn partial(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let input = Arc::clone(self.partial.input())
            .transform_up(|node| {
                if !node.children().is_empty() {
                    return Ok(Transformed::no(node));
                }
                let projection = node
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| batch.schema().index_of(f.name()))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let scan: Arc<dyn ExecutionPlan> = MemorySourceConfig::try_new_exec(
                    &[vec![batch.clone()]],
                    batch.schema(),
                    Some(projection),
                )?;
                Ok(Transformed::yes(scan))
            })?
            .data;
        let partial = Arc::clone(&self.partial).replace_children(
            vec![input],
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )?;
        self.run(partial).await
    }

    /// Combines states (of one pane, or any set of panes) into one state row
    /// per group.
    pub async fn reduce(&self, states: Vec<RecordBatch>) -> Result<RecordBatch> {
        let reduce = self.merge(AggregateMode::PartialReduce, states)?;
        self.run(Arc::new(reduce)).await
    }

    /// Runs the final phase and the rest of the job's SQL over `states`.
    pub async fn finish(&self, states: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let final_phase: Arc<dyn ExecutionPlan> =
            Arc::new(self.merge(AggregateMode::Final, states)?);
        let plan = Arc::clone(&self.plan)
            .transform_down(|node| {
                if node.is::<AggregateExec>() {
                    return Ok(Transformed::new(
                        Arc::clone(&final_phase),
                        true,
                        TreeNodeRecursion::Jump,
                    ));
                }
                Ok(Transformed::no(node))
            })?
            .data;
        collect(plan, Arc::clone(&self.task)).await
    }

    /// `states` with their [`WINDOW_START`] set to `start`: pane states
    /// relabelled as the window they are merged into.
    pub fn relabel(&self, states: &RecordBatch, start: i64) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = states.columns().to_vec();
        columns[self.window_start] = Arc::new(Int64Array::from(vec![start; states.num_rows()]));
        Ok(RecordBatch::try_new(states.schema(), columns)?)
    }

    /// A phase that reads states: `PartialReduce` or `Final`. Filters were
    /// applied by the partial phase.
    fn merge(&self, mode: AggregateMode, states: Vec<RecordBatch>) -> Result<AggregateExec> {
        let scan = MemorySourceConfig::try_new_exec(&[states], self.state_schema(), None)?;
        let aggregates = self.partial.aggr_expr().to_vec();
        let filters = vec![None; aggregates.len()];
        AggregateExec::try_new(
            mode,
            self.partial.group_expr().as_final(),
            aggregates,
            filters,
            scan,
            self.partial.input_schema(),
        )
    }

    async fn run(&self, plan: Arc<dyn ExecutionPlan>) -> Result<RecordBatch> {
        let schema = plan.schema();
        let batches = collect(plan, Arc::clone(&self.task)).await?;
        Ok(datafusion::arrow::compute::concat_batches(
            &schema, &batches,
        )?)
    }
}

/// The topmost aggregate's first phase: a `Single` aggregate, or the
/// `Partial` one under a `Final`.
fn find_aggregate(plan: &Arc<dyn ExecutionPlan>) -> Option<&AggregateExec> {
    if let Some(aggregate) = plan.downcast_ref::<AggregateExec>() {
        return match aggregate.mode() {
            AggregateMode::Partial | AggregateMode::Single | AggregateMode::SinglePartitioned => {
                Some(aggregate)
            }
            _ => find_aggregate(aggregate.input()),
        };
    }
    plan.children().into_iter().find_map(find_aggregate)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;

    use livepulse_contract::record::Payload;

    use super::*;
    use crate::runtime::decode::tests::event_decoder;

    fn batch(events: &[(&str, &str, i64)]) -> RecordBatch {
        let mut decoder = event_decoder();
        for (i, (stream, viewer, ts)) in events.iter().enumerate() {
            let record = format!(
                r#"{{"schema_version":1,"received_ms":0,"events":[{{"event_id":"00000000-0000-4000-8000-{i:012}",
                "ts":{ts},"stream_id":"{stream}","type":"chat","event":"message","viewer_id":"{viewer}","text":"hi"}}]}}"#
            );
            decoder
                .append(Payload::Events, record.as_bytes(), 0, 0)
                .unwrap();
        }
        decoder.finish().unwrap()
    }

    #[tokio::test]
    async fn merged_states_equal_one_pass_over_all_rows() {
        let sql = "SELECT window_start, stream_id, count(*) AS n, \
                   count(DISTINCT viewer_id) AS viewers, \
                   count(*) FILTER (WHERE viewer_id = 'a') AS from_a \
                   FROM window_events GROUP BY window_start, stream_id";
        let job = IncrementalSql::plan(sql, 10_000, event_decoder().schema())
            .await
            .unwrap();
        // Two batches, panes 0 and 10 s; viewer `a` appears in both batches.
        let s1 = job
            .partial(batch(&[("s", "a", 1), ("s", "b", 2), ("s", "a", 10_001)]))
            .await
            .unwrap();
        let s2 = job
            .partial(batch(&[("s", "a", 3), ("s", "c", 10_002)]))
            .await
            .unwrap();
        assert_eq!(s1.num_rows(), 2);
        // Reducing keeps one state per (pane, group).
        let reduced = job.reduce(vec![s1.clone(), s2.clone()]).await.unwrap();
        assert_eq!(reduced.num_rows(), 2);
        // A 20 s window over both panes: relabel, then finish.
        let window: Vec<RecordBatch> = [reduced]
            .iter()
            .map(|s| job.relabel(s, 0).unwrap())
            .collect();
        let out = job.finish(window).await.unwrap();
        let out = datafusion::arrow::compute::concat_batches(&out[0].schema(), &out).unwrap();
        let col = |name: &str| {
            out.column_by_name(name)
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        };
        assert_eq!(col("window_start"), vec![0]);
        assert_eq!(col("n"), vec![5]);
        assert_eq!(col("viewers"), vec![3]);
        assert_eq!(col("from_a"), vec![3]);
    }
}
