//! Saying why nothing moves when JetStream cannot store. In a cluster that
//! has lost a majority of its nodes there is no quorum: no stream has a
//! leader, every publish is refused ("no stream found for given subject")
//! and every pull idles. Cairn's stages wait and retry, losing nothing, but
//! those refusals name the wrong cause. This watch asks JetStream for the
//! account's state every few seconds and says, once, that JetStream is
//! unavailable and why that usually is (after two failed looks in a row),
//! and, once, when it is back.

use crate::Bus;
use std::time::{Duration, Instant};

/// How often JetStream is asked, and how long an answer may take.
pub const EVERY: Duration = Duration::from_secs(5);
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// How long the server this process is connected to may leave the account
/// asked for without any answer before the process connects to another.
/// A server whose host was cut off answers nothing and closes nothing, and
/// the NATS client (async-nats up to 0.49.0, nats.rs#1593) pings only a
/// connection it is not writing to: a stage that keeps asking for work
/// never found it dead. A server of a cluster without quorum answers with
/// an error, which counts as an answer; one without a metadata leader for
/// a moment answers nothing for a few seconds, well under this.
pub const SILENT_FOR: Duration = Duration::from_secs(20);

/// Since when the connected server has answered nothing: pure, for the
/// tests.
#[derive(Debug, Default)]
pub struct Silence {
    since: Option<Instant>,
}

impl Silence {
    /// One look at `now` and whether the server answered it at all: true
    /// once it has answered nothing for [`SILENT_FOR`], which is the time
    /// to connect to another (and the count starts again).
    pub fn look(&mut self, answered: bool, now: Instant) -> bool {
        if answered {
            self.since = None;
            return false;
        }
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) >= SILENT_FOR {
            self.since = None;
            return true;
        }
        false
    }
}

/// What changed since the last look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Unavailable (the reason) after being available.
    Lost(String),
    /// Available again after `down` of being unavailable.
    Back { down: Duration },
}

/// The watch's state: since when JetStream has been unavailable, and
/// whether that was said. A single failed look is not said: a stream has
/// no leader for a moment while its replicas elect one.
#[derive(Debug, Default)]
pub struct Watch {
    down_since: Option<Instant>,
    said: bool,
}

impl Watch {
    /// One look's outcome (`Err(reason)` when JetStream did not answer or
    /// refused) at `now`: what to say, if anything. Pure, for the tests.
    pub fn look(&mut self, outcome: Result<(), String>, now: Instant) -> Option<Change> {
        match (outcome, self.down_since) {
            (Ok(()), Some(since)) => {
                self.down_since = None;
                let said = std::mem::take(&mut self.said);
                said.then(|| Change::Back {
                    down: now.saturating_duration_since(since),
                })
            }
            (Ok(()), None) => None,
            (Err(_), None) => {
                self.down_since = Some(now);
                None
            }
            (Err(why), Some(_)) if !self.said => {
                self.said = true;
                Some(Change::Lost(why))
            }
            (Err(_), Some(_)) => None,
        }
    }
}

impl Watch {
    /// Since when the looks have failed, if the last one did.
    pub fn down_since(&self) -> Option<Instant> {
        self.down_since
    }
}

/// When JetStream became unavailable and when it was last back, as this
/// process's watch saw it (from the first failed look), shared with
/// whoever must not count an outage against work the bus was meant to
/// carry: verify, waiting for objects no store worker could be handed
/// meanwhile.
#[derive(Debug, Clone, Default)]
pub struct Outages(std::sync::Arc<std::sync::Mutex<Down>>);

#[derive(Debug, Default, Clone, Copy)]
struct Down {
    since: Option<Instant>,
    back: Option<Instant>,
}

impl Outages {
    /// Since when JetStream has been unavailable, if it is now.
    pub fn down_since(&self) -> Option<Instant> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).since
    }

    /// When the last outage ended, if there was one.
    pub fn last_back(&self) -> Option<Instant> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).back
    }

    /// Records the watch's state after a look at `now`.
    pub fn note(&self, down_since: Option<Instant>, now: Instant) {
        let mut d = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match (d.since, down_since) {
            (None, Some(s)) => d.since = Some(s),
            (Some(_), None) => {
                d.since = None;
                d.back = Some(now);
            }
            _ => {}
        }
    }

    /// Until when work that began at `start` and may take `timeout` of
    /// time with JetStream available is waited for, as it stands at `now`:
    /// never over while JetStream is down, and a whole `timeout` (and
    /// `grace`, for what the outage left to be delivered again) after it
    /// is back. Pure, for the tests.
    pub fn deadline(
        &self,
        start: Instant,
        timeout: Duration,
        grace: Duration,
        now: Instant,
    ) -> Instant {
        let d = *self.0.lock().unwrap_or_else(|p| p.into_inner());
        match (d.since, d.back) {
            (Some(_), _) => (now + timeout).max(start + timeout),
            (None, Some(back)) if back > start => back + timeout + grace,
            _ => start + timeout,
        }
    }
}

/// The sentence an operator reads when JetStream is lost; `servers` is how
/// many `nats.url` lists.
pub fn explain(why: &str, servers: usize) -> String {
    let cluster = if servers > 1 {
        format!(
            "with {servers} servers in nats.url this is most likely a cluster without quorum: fewer than {} of its nodes are up, so no stream has a leader",
            servers / 2 + 1
        )
    } else {
        "the server may be starting, out of storage, or (in a cluster) without quorum".to_string()
    };
    format!(
        "JetStream is unavailable ({why}); {cluster}. Every stage waits and retries; nothing is lost, and work resumes once JetStream answers again"
    )
}

/// JetStream's answer to `$JS.API.INFO`: its error's description, if it
/// refused.
pub fn answered(payload: &[u8]) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| format!("an answer that is not JSON: {e}"))?;
    match v.get("error") {
        None => Ok(()),
        Some(e) => Err(e
            .get("description")
            .and_then(|d| d.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string())),
    }
}

impl Bus {
    /// Whether JetStream answers now: for the account, and for the EVENTS
    /// stream, whose leader answers only while the cluster has a quorum
    /// (a server cut off from the others may still answer for the
    /// account). Asked as plain requests and read as JSON: the client's
    /// typed answers do not parse every server version's.
    pub async fn jetstream_available(&self) -> Result<(), String> {
        self.jetstream_answers().await.1
    }

    /// As [`jetstream_available`](Self::jetstream_available), with whether
    /// the server answered the first question at all (even refusing).
    async fn jetstream_answers(&self) -> (bool, Result<(), String>) {
        let mut heard = false;
        let outcome = self.ask_jetstream(&mut heard).await;
        (heard, outcome)
    }

    async fn ask_jetstream(&self, heard: &mut bool) -> Result<(), String> {
        let events = self.subjects.events_stream();
        for (subject, what) in [
            ("$JS.API.INFO".to_string(), "the account".to_string()),
            (
                format!("$JS.API.STREAM.INFO.{events}"),
                format!("stream {events}"),
            ),
        ] {
            let asked = self.client.request(subject, bytes::Bytes::new());
            let got = tokio::time::timeout(ANSWER_WITHIN, asked).await;
            // A refusal is an answer; a request timing out inside the
            // client is not.
            *heard |= matches!(&got, Ok(Ok(_)))
                || matches!(&got, Ok(Err(e)) if e.kind() != async_nats::RequestErrorKind::TimedOut);
            match got {
                Ok(Ok(m)) => answered(&m.payload).map_err(|e| format!("{what}: {e}"))?,
                Ok(Err(e)) => return Err(format!("{what}: {e}")),
                Err(_) => {
                    return Err(format!(
                        "{what}: no answer within {} s",
                        ANSWER_WITHIN.as_secs()
                    ))
                }
            }
        }
        Ok(())
    }

    /// Looks every [`EVERY`] until the process ends, logging a loss of
    /// JetStream (an error, with [`explain`]) and its return, and keeping
    /// `outages`.
    pub async fn watch_quorum(self, outages: Outages) {
        let servers = self
            .cfg
            .url
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .count();
        let mut watch = Watch::default();
        let mut silence = Silence::default();
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (heard, outcome) = self.jetstream_answers().await;
            let now = Instant::now();
            if silence.look(heard, now) {
                tracing::warn!(
                    silent_secs = SILENT_FOR.as_secs(),
                    "the NATS server this process is connected to has answered nothing for {} s (its host cut off?); connecting to another",
                    SILENT_FOR.as_secs()
                );
                if let Err(e) = self.client.force_reconnect().await {
                    tracing::warn!(error = %e, "could not ask the NATS client to reconnect");
                }
            }
            let change = watch.look(outcome, now);
            outages.note(watch.down_since(), now);
            match change {
                Some(Change::Lost(why)) => tracing::error!("{}", explain(&why, servers)),
                Some(Change::Back { down }) => tracing::warn!(
                    down_secs = down.as_secs(),
                    "JetStream is available again after {} s; work resumes",
                    down.as_secs()
                ),
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_and_a_return_are_each_said_once() {
        let mut w = Watch::default();
        let t = Instant::now();
        assert_eq!(w.look(Ok(()), t), None);
        // One failed look is an election, not an outage.
        assert_eq!(w.look(Err("timed out".into()), t), None);
        assert_eq!(w.look(Ok(()), t + EVERY), None);
        assert_eq!(w.look(Err("timed out".into()), t), None);
        assert_eq!(
            w.look(Err("timed out".into()), t + EVERY),
            Some(Change::Lost("timed out".into()))
        );
        assert_eq!(w.look(Err("timed out".into()), t + 2 * EVERY), None);
        assert_eq!(
            w.look(Ok(()), t + Duration::from_secs(12)),
            Some(Change::Back {
                down: Duration::from_secs(12)
            })
        );
        assert_eq!(w.look(Ok(()), t + Duration::from_secs(17)), None);
    }

    #[test]
    fn only_a_server_silent_for_the_whole_span_is_left() {
        let t = Instant::now();
        let s = Duration::from_secs;
        let mut silence = Silence::default();
        assert!(!silence.look(false, t));
        assert!(!silence.look(false, t + s(15)));
        assert!(!silence.look(true, t + s(16)), "an answer, even a refusal");
        assert!(!silence.look(false, t + s(20)), "counted again from here");
        assert!(!silence.look(false, t + s(35)));
        assert!(silence.look(false, t + s(40)), "20 s without an answer");
        assert!(
            !silence.look(false, t + s(45)),
            "and again from the reconnect"
        );
        assert!(silence.look(false, t + s(65)));
    }

    #[test]
    fn a_deadline_does_not_run_out_while_down_and_restarts_when_back() {
        let o = Outages::default();
        let t = Instant::now();
        let s = Duration::from_secs;
        let (timeout, grace) = (s(20), s(5));
        o.note(None, t);
        assert_eq!(o.deadline(t, timeout, grace, t + s(3)), t + s(20));
        // Down from 10 s: never over while down.
        o.note(Some(t + s(10)), t + s(10));
        assert_eq!(o.down_since(), Some(t + s(10)));
        assert_eq!(o.deadline(t, timeout, grace, t + s(15)), t + s(35));
        assert_eq!(o.deadline(t, timeout, grace, t + s(90)), t + s(110));
        // Back at 100 s: a whole timeout and the grace from then.
        o.note(None, t + s(100));
        assert_eq!(o.last_back(), Some(t + s(100)));
        assert_eq!(o.deadline(t, timeout, grace, t + s(101)), t + s(125));
        // Work that began after the outage has its own timeout only.
        assert_eq!(
            o.deadline(t + s(200), timeout, grace, t + s(201)),
            t + s(220)
        );
    }

    #[test]
    fn an_answer_is_read_for_its_error() {
        assert_eq!(answered(br#"{"type":"x","memory":0}"#), Ok(()));
        assert_eq!(
            answered(br#"{"error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}"#),
            Err("JetStream system temporarily unavailable".into())
        );
        assert!(answered(b"nope").is_err());
    }

    #[test]
    fn the_explanation_names_quorum_and_the_majority() {
        let e = explain("timed out", 3);
        assert!(e.contains("without quorum") && e.contains("fewer than 2 of its nodes"));
        assert!(e.contains("nothing is lost"));
        assert!(explain("x", 1).contains("(in a cluster) without quorum"));
    }
}
