//! HAProxy's agent check (`seed serve --agent-port N`; on HAProxy's side `server … agent-check
//! agent-port N agent-inter 1s`): each connection to the port gets one line saying how much
//! traffic this replica should take, and is closed.
//!
//! - `ready up W%` while every model is loaded and the replica admits requests: `W` falls
//!   with the KV pool's use and with the queue, so HAProxy sends fewer new requests to a
//!   busy replica (`ready` also ends a drain an earlier answer asked for);
//! - `drain` once shutdown has begun: HAProxy sends no new requests, the running ones finish;
//! - `down` while a model is still loading (or failed to).

use std::time::Duration;

use engine::stats::EngineStats;
use tokio::net::TcpListener;

use crate::state::AppState;

/// One engine's load: KV blocks in use, KV blocks in all, requests waiting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Load {
    /// KV blocks held by sequences.
    pub kv_used: u64,
    /// KV blocks in the pool.
    pub kv_total: u64,
    /// Requests waiting to be admitted.
    pub waiting: u64,
}

/// The agent's answer (with its newline) for a replica that is `ready` (every model loaded),
/// or `closing` (shutdown begun), with its engines' `loads`.
pub fn answer(ready: bool, closing: bool, loads: &[Load]) -> String {
    if closing {
        return "drain\n".to_string();
    }
    if !ready {
        return "down\n".to_string();
    }
    // The busiest engine decides: the share of its KV pool still free, divided by one
    // plus the requests queued in all. Never 0 %, which HAProxy would treat as a drain.
    let free = loads
        .iter()
        .map(|l| if l.kv_total == 0 { 1.0 } else { 1.0 - l.kv_used.min(l.kv_total) as f64 / l.kv_total as f64 })
        .fold(1.0f64, f64::min);
    let waiting: u64 = loads.iter().map(|l| l.waiting).sum();
    let weight = (100.0 * free / (1 + waiting) as f64).round().clamp(1.0, 100.0);
    format!("ready up {weight}%\n")
}

/// The answer for `state` now.
pub fn answer_for(state: &AppState) -> String {
    let loads: Vec<Load> = state
        .backends()
        .loaded()
        .map(|(_, b)| {
            let s = b.engine.stats();
            Load {
                kv_used: EngineStats::get(&s.kv_blocks_used),
                kv_total: EngineStats::get(&s.kv_blocks_total),
                waiting: EngineStats::get(&s.waiting),
            }
        })
        .collect();
    let ready = state.ready_all().is_ok();
    answer(ready, state.is_closing(), &loads)
}

/// Answers every connection to `listener` with [`answer_for`] until the process ends.
pub async fn serve_agent(listener: TcpListener, state: AppState) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let line = answer_for(&state);
        tokio::spawn(async move {
            // One short line: a fresh socket's send buffer takes it whole. Dropping the
            // stream closes the connection, which ends the answer for HAProxy.
            if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(1), stream.writable()).await {
                let _ = stream.try_write(line.as_bytes());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_falls_with_kv_use_and_queue_and_states_come_first() {
        let idle = Load { kv_used: 0, kv_total: 64, waiting: 0 };
        assert_eq!(answer(true, false, &[idle]), "ready up 100%\n");
        assert_eq!(answer(true, false, &[Load { kv_used: 48, ..idle }]), "ready up 25%\n");
        assert_eq!(answer(true, false, &[Load { waiting: 3, ..idle }]), "ready up 25%\n");
        // Full and queued: the least weight, never 0 (a drain).
        assert_eq!(answer(true, false, &[Load { kv_used: 64, kv_total: 64, waiting: 9 }]), "ready up 1%\n");
        // The busiest of several engines decides; queues add up.
        let busy = Load { kv_used: 32, kv_total: 64, waiting: 1 };
        assert_eq!(answer(true, false, &[idle, busy]), "ready up 25%\n");
        assert_eq!(answer(false, false, &[]), "down\n");
        assert_eq!(answer(true, true, &[idle]), "drain\n");
        assert_eq!(answer(false, true, &[]), "drain\n");
    }
}
