//! Congestion control for replication links: a window sized from the measured delivery rate
//! and round-trip time, which reads random packet loss as noise and a growing queue as
//! congestion.
//!
//! Why not quinn's own: on a WAN path with random loss, loss-based control (NewReno, Cubic)
//! halves its window at every lost packet and settles near `1.2 × MSS / (RTT × √loss)` —
//! about 100 KB/s at 2 % loss and a 100 ms round trip. Quinn's BBR tolerates loss in short
//! runs, but in `scripts/bench-georep-transports` it fell to ~0.1 MB/s after a while on that
//! same link, where the kernel's TCP BBR drained at 8–10 MB/s.
//!
//! The model, per round (one minimum round trip):
//! - **Delivery rate.** Bytes acknowledged in the round over its duration; the windowed maximum
//!   of the last [`RATE_ROUNDS`] rounds (app-limited rounds count only when they beat it) is the
//!   path's bandwidth, and bandwidth × minimum RTT its bandwidth-delay product (BDP).
//! - **Probing.** A round that was not app-limited and saw no standing queue (smoothed RTT under
//!   `1.5 × min RTT + 5 ms`) grows the window by half, to at least twice the BDP.
//! - **A standing queue** (the RTT above that) is congestion: the window drops to 1.25 × BDP,
//!   which drains the queue within a round or two.
//! - **Loss** cuts the window (×0.7) only when more than [`HEAVY_LOSS`] of a round's bytes
//!   were lost — a policer or an overflowing buffer, not noise — and to the minimum on
//!   persistent congestion (everything in flight lost).
//! - **The minimum RTT** is this controller's own: the lowest sample of the last
//!   [`MIN_RTT_EXPIRY`]. When none lower came for that long, the window drops to the minimum for
//!   [`PROBE_RTT`] so the queue drains and a fresh minimum is measured (BBR's ProbeRTT), then is
//!   restored. And when the RTT stays high for [`STALE_AFTER_ROUNDS`] rounds after the window
//!   was cut to drain a queue, the path itself got longer (a route change): the round's lowest
//!   sample becomes the minimum at once. Quinn's `RttEstimator::min` is the connection's
//!   lifetime minimum, which would take a longer path for a standing queue forever.
//!
//! Quinn paces sends over the smoothed RTT, so a window of a BDP or two goes out evenly.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::congestion::{Controller, ControllerFactory};
use quinn_proto::RttEstimator;

/// Rounds the bandwidth estimate remembers.
const RATE_ROUNDS: usize = 10;
/// Share of a round's bytes lost that counts as congestion.
const HEAVY_LOSS: f64 = 0.2;
/// The initial window, in datagrams (RFC 9002's 10, a little more for a WAN link).
const INITIAL_PACKETS: u64 = 32;
const MIN_PACKETS: u64 = 4;
/// The window never exceeds this (far above the connection's 64 MiB send window): growth is
/// multiplicative, and a path that never shows a queue must not overflow it.
const MAX_WINDOW: u64 = 1 << 30;
/// RTT samples above this are clamped (a time arithmetic guard, not a path property).
const MAX_RTT: Duration = Duration::from_secs(60);
/// A minimum RTT sample is trusted this long.
const MIN_RTT_EXPIRY: Duration = Duration::from_secs(10);
/// Rounds in a row with a queue that a window cut did not drain, after which the minimum RTT is
/// taken to be stale.
const STALE_AFTER_ROUNDS: u32 = 4;
/// How long the window stays at the minimum to measure the round trip without a queue.
const PROBE_RTT: Duration = Duration::from_millis(200);

/// Builds a [`WanController`] per connection.
#[derive(Debug, Clone, Default)]
pub struct WanConfig;

impl ControllerFactory for WanConfig {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        Box::new(WanController::new(now, current_mtu))
    }
}

#[derive(Debug, Clone)]
pub struct WanController {
    mtu: u64,
    window: u64,
    round_start: Instant,
    round_end: Instant,
    round_acked: u64,
    round_lost: u64,
    /// Every acknowledgement of the round came while the sender had nothing more to send.
    round_app_limited: bool,
    persistent_congestion: bool,
    /// Delivery rates (bytes/s) of recent rounds, oldest first.
    rates: VecDeque<f64>,
    /// The lowest RTT sample since `min_rtt_at` (zero before the first).
    min_rtt: Duration,
    min_rtt_at: Instant,
    /// Probing the RTT until then, with the window to restore after.
    probe: Option<(Instant, u64)>,
    /// The lowest RTT sample of the current round.
    round_min_rtt: Duration,
    /// Consecutive rounds that ended with a standing queue.
    queued_rounds: u32,
    srtt: Duration,
}

impl WanController {
    pub fn new(now: Instant, mtu: u16) -> WanController {
        let mtu = u64::from(mtu);
        WanController {
            mtu,
            window: INITIAL_PACKETS * mtu,
            round_start: now,
            round_end: now,
            round_acked: 0,
            round_lost: 0,
            round_app_limited: true,
            persistent_congestion: false,
            rates: VecDeque::with_capacity(RATE_ROUNDS),
            min_rtt: Duration::ZERO,
            min_rtt_at: now,
            probe: None,
            round_min_rtt: Duration::MAX,
            queued_rounds: 0,
            srtt: Duration::ZERO,
        }
    }

    fn min_window(&self) -> u64 {
        MIN_PACKETS * self.mtu
    }

    /// The path's bandwidth estimate, bytes/s.
    fn bandwidth(&self) -> f64 {
        self.rates.iter().copied().fold(0.0, f64::max)
    }

    fn acked(
        &mut self,
        now: Instant,
        bytes: u64,
        app_limited: bool,
        sample: Duration,
        srtt: Duration,
    ) {
        self.round_acked += bytes;
        self.round_app_limited &= app_limited;
        self.srtt = srtt;
        let sample = sample.min(MAX_RTT);
        self.round_min_rtt = self.round_min_rtt.min(sample);
        if self.min_rtt.is_zero() || sample <= self.min_rtt {
            self.min_rtt = sample;
            self.min_rtt_at = now;
        } else if self.probe.is_none()
            && now.saturating_duration_since(self.min_rtt_at) > MIN_RTT_EXPIRY
        {
            // Drain the queue and take the lowest sample of the probe as the new minimum.
            let until = now + PROBE_RTT.max(self.srtt.min(MAX_RTT));
            self.probe = Some((until, self.window));
            self.window = self.min_window();
            self.min_rtt = sample;
            self.min_rtt_at = now;
        }
    }

    fn lost(&mut self, bytes: u64, persistent: bool) {
        self.round_lost += bytes;
        if persistent {
            // Everything in flight was lost: start again from the minimum at once.
            self.persistent_congestion = true;
            self.window = self.min_window();
        }
    }

    fn end_round(&mut self, now: Instant) {
        if let Some((until, window)) = self.probe {
            if now < until {
                return;
            }
            self.probe = None;
            self.window = window.max(self.min_window());
            self.reset_round(now);
            return;
        }
        let duration = now
            .saturating_duration_since(self.round_start)
            .max(Duration::from_millis(1));
        let rate = self.round_acked as f64 / duration.as_secs_f64();
        if !self.round_app_limited || rate > self.bandwidth() {
            if self.rates.len() == RATE_ROUNDS {
                self.rates.pop_front();
            }
            self.rates.push_back(rate);
        }
        let bdp = (self.bandwidth() * self.min_rtt.as_secs_f64()) as u64;
        let total = self.round_acked + self.round_lost;
        let heavy_loss = total > 0 && self.round_lost as f64 > HEAVY_LOSS * total as f64;
        let queue = self.srtt.min(MAX_RTT) > self.min_rtt * 3 / 2 + Duration::from_millis(5);
        self.queued_rounds = if queue { self.queued_rounds + 1 } else { 0 };
        if self.queued_rounds > STALE_AFTER_ROUNDS && self.round_min_rtt < Duration::MAX {
            // The window was cut rounds ago and the round trip did not come down: no queue of
            // ours holds it up, the path itself got longer. Its lowest recent sample is the
            // new minimum (the 10 s expiry would take long).
            self.min_rtt = self.round_min_rtt;
            self.min_rtt_at = now;
            self.queued_rounds = 0;
        }
        self.window = if self.persistent_congestion {
            self.min_window()
        } else if heavy_loss {
            self.window / 10 * 7
        } else if queue {
            bdp.saturating_mul(5) / 4
        } else if !self.round_app_limited {
            (self.window / 2 * 3).max(bdp.saturating_mul(2))
        } else {
            self.window
        }
        .clamp(self.min_window(), MAX_WINDOW);
        self.reset_round(now);
    }

    fn reset_round(&mut self, now: Instant) {
        self.round_start = now;
        self.round_end = now + self.min_rtt.max(Duration::from_millis(5));
        self.round_acked = 0;
        self.round_lost = 0;
        self.round_app_limited = true;
        self.persistent_congestion = false;
        self.round_min_rtt = Duration::MAX;
    }
}

impl Controller for WanController {
    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        let sample = now.saturating_duration_since(sent);
        self.acked(now, bytes, app_limited, sample, rtt.get());
    }

    fn on_end_acks(
        &mut self,
        now: Instant,
        _in_flight: u64,
        _app_limited: bool,
        _largest_packet_num_acked: Option<u64>,
    ) {
        if now >= self.round_end {
            self.end_round(now);
        }
    }

    fn on_congestion_event(
        &mut self,
        _now: Instant,
        _sent: Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    ) {
        self.lost(lost_bytes, is_persistent_congestion);
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.mtu = u64::from(new_mtu);
        self.window = self.window.max(self.min_window());
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }

    fn initial_window(&self) -> u64 {
        INITIAL_PACKETS * self.mtu
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path of `bandwidth` bytes/s and `rtt` base round trip, with a queue in front of it and
    /// `loss` of the packets dropped at random (deterministically spread). Runs `rounds` rounds
    /// of a sender that always has data; returns the delivery rate over them.
    fn run(
        c: &mut WanController,
        now: &mut Instant,
        bandwidth: f64,
        rtt: Duration,
        loss: f64,
        rounds: u32,
    ) -> f64 {
        let bdp = bandwidth * rtt.as_secs_f64();
        let (mut delivered, mut elapsed) = (0.0, 0.0);
        let mut lost_carry = 0.0;
        for _ in 0..rounds {
            let window = c.window() as f64;
            // What is beyond the BDP waits in the queue: the round trip grows with it.
            let queue = (window - bdp).max(0.0) / bandwidth;
            let round = rtt + Duration::from_secs_f64(queue);
            let sent = window.min(bandwidth * round.as_secs_f64());
            lost_carry += sent * loss;
            let lost = lost_carry.floor();
            lost_carry -= lost;
            delivered += sent - lost;
            elapsed += round.as_secs_f64();
            *now += round;
            c.acked(*now, (sent - lost) as u64, false, round, round);
            c.lost(lost as u64, false);
            c.end_round(*now);
        }
        delivered / elapsed
    }

    #[test]
    fn random_loss_does_not_shrink_the_window() {
        // 2 % loss, 100 ms, 12.5 MB/s: loss-based control would settle near 100 KB/s.
        let (bandwidth, rtt) = (12_500_000.0, Duration::from_millis(100));
        let mut now = Instant::now();
        let mut c = WanController::new(now, 1200);
        let rate = run(&mut c, &mut now, bandwidth, rtt, 0.02, 100);
        assert!(rate > 0.8 * bandwidth, "{rate} of {bandwidth}");
        // And it does not sit on a standing queue of more than about one BDP.
        let bdp = bandwidth * rtt.as_secs_f64();
        assert!(
            (c.window() as f64) < 2.6 * bdp,
            "window {} bdp {bdp}",
            c.window()
        );
    }

    #[test]
    fn heavy_loss_and_persistent_congestion_cut_the_window() {
        let (bandwidth, rtt) = (12_500_000.0, Duration::from_millis(100));
        let mut now = Instant::now();
        let mut c = WanController::new(now, 1200);
        run(&mut c, &mut now, bandwidth, rtt, 0.0, 50);
        let before = c.window();
        run(&mut c, &mut now, bandwidth, rtt, 0.4, 3);
        assert!(c.window() < before / 2, "{} then {}", before, c.window());
        c.lost(1200, true);
        assert_eq!(c.window(), c.min_window());
    }

    #[test]
    fn rounds_without_samples_and_endless_growth_stay_in_bounds() {
        let mut now = Instant::now();
        let mut c = WanController::new(now, 1200);
        c.acked(
            now,
            1200,
            false,
            Duration::from_millis(1),
            Duration::from_millis(1),
        );
        // The RTT stays high with no samples in the rounds: nothing to take as a minimum.
        for _ in 0..20 {
            now += Duration::from_millis(10);
            c.srtt = Duration::from_secs(1);
            c.end_round(now);
        }
        assert!(c.min_rtt < Duration::from_secs(1));
        // A path that never queues and never limits: the window stops at its ceiling.
        for _ in 0..200 {
            now += Duration::from_millis(10);
            c.acked(
                now,
                c.window(),
                false,
                Duration::from_millis(1),
                Duration::from_millis(1),
            );
            c.end_round(now);
        }
        assert_eq!(c.window(), MAX_WINDOW);
    }

    #[test]
    fn an_app_limited_sender_keeps_its_window() {
        let mut c = WanController::new(Instant::now(), 1200);
        let rtt = Duration::from_millis(50);
        let start = c.window();
        let mut now = Instant::now();
        for _ in 0..20 {
            now += rtt;
            c.acked(now, 1200, true, rtt, rtt);
            c.end_round(now);
        }
        assert_eq!(c.window(), start);
    }

    #[test]
    fn a_longer_round_trip_is_measured_again() {
        // A clean 1 ms path, then 100 ms: within a few rounds (not after the 10 s expiry) the
        // new minimum is taken, and the window grows to the new BDP.
        let bandwidth = 12_500_000.0;
        let (fast, slow) = (Duration::from_millis(1), Duration::from_millis(100));
        let mut now = Instant::now();
        let mut c = WanController::new(now, 1200);
        run(&mut c, &mut now, bandwidth, fast, 0.0, 200);
        run(&mut c, &mut now, bandwidth, slow, 0.02, 10);
        assert!(c.min_rtt >= slow, "{:?}", c.min_rtt);
        let rate = run(&mut c, &mut now, bandwidth, slow, 0.02, 100);
        assert!(rate > 0.8 * bandwidth, "{rate} of {bandwidth}");
    }
}
