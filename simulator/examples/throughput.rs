//! Measures how fast the audience generates events.
//!
//! `cargo run --release -p livepulse-simulator --example throughput [viewers] [minutes]`

use std::time::{Duration, Instant};

use livepulse_simulator::{Audience, AudienceConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let viewers: u32 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let minutes: i64 = args.next().map_or(Ok(10), |a| a.parse())?;
    let start_ms = 1_750_000_000_000;
    let mut audience = Audience::new(AudienceConfig::new(1, 200, viewers, start_ms))?;

    let began = Instant::now();
    let mut generating = Duration::ZERO;
    let mut events = 0usize;
    // Draw in 10-second chunks, as a consumer keeping memory flat would.
    let mut until = start_ms;
    while until < start_ms + minutes * 60_000 {
        until += 10_000;
        let drawn = Instant::now();
        let chunk = audience.events_until(until);
        generating += drawn.elapsed();
        events += chunk.len();
    }
    let total = began.elapsed().as_secs_f64();
    let generating = generating.as_secs_f64();
    println!(
        "{events} events ({viewers} viewers, {minutes} simulated minutes): \
         {:.0} events/s generating ({generating:.2} s), {:.0} events/s with dropping them ({total:.2} s)",
        events as f64 / generating,
        events as f64 / total,
    );
    Ok(())
}
