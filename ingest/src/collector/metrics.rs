//! The collector's Prometheus metrics. The recorder is process-global, so it
//! is installed once and shared by every collector in the process.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, describe_counter, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::CollectorError;

/// `POST /v1/events` requests, by `status` (HTTP status code).
pub const REQUESTS: &str = "livepulse_collector_requests_total";
/// Events acknowledged by the broker.
pub const EVENTS_ACCEPTED: &str = "livepulse_collector_events_accepted_total";
/// Events rejected, by `code` ([`livepulse_contract::Rejection::code`]).
pub const EVENTS_REJECTED: &str = "livepulse_collector_events_rejected_total";
/// Kafka records acknowledged, by `topic`.
pub const RECORDS_PRODUCED: &str = "livepulse_collector_records_produced_total";
/// Requests answered 503 because the broker failed or did not acknowledge in time.
pub const BROKER_ERRORS: &str = "livepulse_collector_broker_errors_total";
/// Time from handing a request's records to the producer until the broker
/// acknowledged all of them (or failed), seconds.
pub const PRODUCE_SECONDS: &str = "livepulse_collector_produce_duration_seconds";

/// Histogram buckets of [`PRODUCE_SECONDS`]: 1 ms to 10 s.
const PRODUCE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// How often histogram samples are folded into buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static RECORDER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use.
pub(crate) fn handle() -> Result<&'static PrometheusHandle, CollectorError> {
    RECORDER
        .get_or_init(install)
        .as_ref()
        .map_err(|e| CollectorError::Metrics(e.clone()))
}

fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(PRODUCE_SECONDS.into()), PRODUCE_BUCKETS)
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| e.to_string())?;
    let upkeep = handle.clone();
    // Without upkeep, histogram samples pile up until the next scrape.
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        })
        .map_err(|e| e.to_string())?;
    describe_counter!(REQUESTS, "POST /v1/events requests by HTTP status");
    describe_counter!(EVENTS_ACCEPTED, "Events acknowledged by the broker");
    describe_counter!(EVENTS_REJECTED, "Events rejected by validation, by code");
    describe_counter!(RECORDS_PRODUCED, "Kafka records acknowledged, by topic");
    describe_counter!(
        BROKER_ERRORS,
        "Requests answered 503 because the broker failed or timed out"
    );
    describe_histogram!(
        PRODUCE_SECONDS,
        Unit::Seconds,
        "Time until the broker acknowledged all records of a request"
    );
    Ok(handle)
}
