//! What the console draws over time. Consumer lag is sampled from the
//! broker every few seconds while the console runs (the broker keeps no
//! history of it); what was backed up comes from the ledger, for any
//! period (`cairn_ledger::query::finished_over_time`).

use cairn_bus::{Backlog, Bus};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the broker is asked.
pub const EVERY: Duration = Duration::from_secs(2);
/// Samples kept: an hour at [`EVERY`].
pub const KEEP: usize = 1800;

/// One reading of every consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since the epoch.
    pub at: i64,
    pub backlog: Backlog,
}

/// One consumer's lag over time: `[at, pending, ack_pending]` points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Series {
    pub stream: String,
    pub consumer: String,
    pub points: Vec<[i64; 3]>,
}

/// Each consumer's points, in the order consumers first appear; a
/// consumer missing from a sample (not created yet) has no point there.
pub fn series<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for s in samples {
        for c in &s.backlog.consumers {
            let i = match out
                .iter()
                .position(|x| x.stream == c.stream && x.consumer == c.consumer)
            {
                Some(i) => i,
                None => {
                    out.push(Series {
                        stream: c.stream.clone(),
                        consumer: c.consumer.clone(),
                        points: Vec::new(),
                    });
                    out.len() - 1
                }
            };
            out[i]
                .points
                .push([s.at, c.pending as i64, c.ack_pending as i64]);
        }
    }
    out
}

/// The sampler: runs until dropped.
pub struct Lag {
    samples: Arc<Mutex<VecDeque<Sample>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Lag {
    pub fn start(bus: Bus, networks: Vec<String>, every: Duration) -> Lag {
        let samples = Arc::new(Mutex::new(VecDeque::with_capacity(KEEP)));
        let kept = samples.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut failing = false;
            loop {
                tick.tick().await;
                match bus.backlog(&networks).await {
                    Ok(backlog) => {
                        failing = false;
                        let at = unix_now();
                        let mut k = kept.lock().unwrap_or_else(|p| p.into_inner());
                        if k.len() == KEEP {
                            k.pop_front();
                        }
                        k.push_back(Sample { at, backlog });
                    }
                    // Said once per outage, not every tick.
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "console: cannot read consumer lag");
                    }
                    Err(_) => {}
                }
            }
        });
        Lag { samples, task }
    }

    /// Each consumer's lag over the last `secs`.
    pub fn series(&self, secs: i64) -> Vec<Series> {
        let since = unix_now() - secs;
        let k = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        series(k.iter().filter(|s| s.at >= since))
    }
}

impl Drop for Lag {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_bus::ConsumerBacklog;

    fn c(consumer: &str, pending: u64) -> ConsumerBacklog {
        ConsumerBacklog {
            stream: "EVENTS".into(),
            consumer: consumer.into(),
            pending,
            ack_pending: 1,
        }
    }

    #[test]
    fn each_consumer_gets_its_own_line_from_its_first_sample_on() {
        let samples = [
            Sample {
                at: 10,
                backlog: Backlog {
                    consumers: vec![c("verify", 5)],
                    streams: vec![],
                },
            },
            Sample {
                at: 12,
                backlog: Backlog {
                    consumers: vec![c("verify", 3), c("ledger", 7)],
                    streams: vec![],
                },
            },
        ];
        let s = series(&samples);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].consumer, "verify");
        assert_eq!(s[0].points, vec![[10, 5, 1], [12, 3, 1]]);
        assert_eq!(s[1].consumer, "ledger");
        assert_eq!(s[1].points, vec![[12, 7, 1]]);
        assert!(series(&[]).is_empty());
    }
}
