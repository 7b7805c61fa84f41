//! Client quotas (Kafka's ClientQuotaManager): byte rates per user and client id, measured
//! over sampled windows. A client over its quota is answered with `throttle_time_ms` and its
//! connection is muted for that long, so Kafka's clients back off on their own and a flooding
//! client cannot take the broker from the others.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kafka_protocol::messages::RequestHeader;
use sluice_controller::{MetadataImage, QuotaEntity};

use crate::config::BrokerConfig;
use crate::metrics;
use crate::request_scope::RequestScope;

/// Entity types of client quotas.
pub const USER: &str = "user";
/// Entity type of a client id.
pub const CLIENT_ID: &str = "client-id";
/// Entity type of a client address (connection-creation quotas).
pub const IP: &str = "ip";

/// The quotas Sluice enforces per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// Bytes produced per second (`producer_byte_rate`).
    Produce,
    /// Bytes fetched by consumers per second (`consumer_byte_rate`).
    Fetch,
    /// Partitions created or deleted per second (`controller_mutation_rate`, KIP-599).
    ControllerMutation,
    /// Percent of one thread's time spent serving the client (`request_percentage`).
    Request,
}

impl QuotaKind {
    /// The quota's key, as kafka-configs names it.
    pub fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => "producer_byte_rate",
            QuotaKind::Fetch => "consumer_byte_rate",
            QuotaKind::ControllerMutation => "controller_mutation_rate",
            QuotaKind::Request => "request_percentage",
        }
    }

    fn label(self) -> &'static str {
        match self {
            QuotaKind::Produce => "produce",
            QuotaKind::Fetch => "fetch",
            QuotaKind::ControllerMutation => "controller_mutation",
            QuotaKind::Request => "request",
        }
    }
}

/// Who a request is from, as quotas see it.
#[derive(Debug, Clone, Copy)]
pub struct QuotaClient<'a> {
    /// The principal's name.
    pub user: &'a str,
    /// The request header's client id.
    pub client_id: &'a str,
}

impl<'a> QuotaClient<'a> {
    /// The sender of a request: its connection's principal (ANONYMOUS unauthenticated) and
    /// its client id.
    pub fn of(scope: &'a RequestScope, header: &'a RequestHeader) -> Self {
        Self {
            user: &scope.principal().name,
            client_id: header.client_id.as_ref().map_or("", |c| c.as_str()),
        }
    }
}

/// The sensor a quota is measured on: clients matched by the same entity share it, named by
/// the user and client id the entity names (empty when it names neither), as Kafka tags its
/// quota metrics.
type SensorKey = (QuotaKind, String, String);

/// The quota sensors of this broker.
pub struct ClientQuotas {
    window: Duration,
    samples: usize,
    sensors: Mutex<HashMap<SensorKey, SampledRate>>,
    /// Seconds of `controller_mutation_rate` one burst may use.
    mutation_span: Duration,
    /// Controller mutations are measured by token buckets instead (KIP-599).
    buckets: Mutex<HashMap<SensorKey, TokenBucket>>,
}

/// The quota that applies to a client and the sensor it is measured on.
struct Applicable {
    bound: f64,
    sensor: SensorKey,
}

impl ClientQuotas {
    /// Sensors with `quota.window.num` samples of `quota.window.size.seconds` each.
    pub fn new(config: &BrokerConfig) -> Self {
        Self {
            window: config.quota_window(),
            samples: config.quota_window_samples(),
            sensors: Mutex::new(HashMap::new()),
            mutation_span: config.controller_quota_span(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `mutations` (partitions created or deleted) from `client`'s
    /// `controller_mutation_rate` bucket, as Kafka's ControllerMutationQuotaManager does.
    /// `strict` (the API versions that know THROTTLING_QUOTA_EXCEEDED) refuses them while
    /// the bucket is in debt; otherwise they always pass. A mutation taken may overdraw the
    /// bucket. Returns whether they were taken, and how long the client must now be throttled
    /// (until the debt is paid back).
    pub fn take_mutations(
        &self,
        image: &MetadataImage,
        client: QuotaClient,
        mutations: u32,
        strict: bool,
        now: Instant,
    ) -> (bool, Duration) {
        let Some(quota) = applicable(image, QuotaKind::ControllerMutation, client) else {
            return (true, Duration::ZERO);
        };
        let burst = quota.bound * self.mutation_span.as_secs_f64();
        let (taken, throttle) = {
            let Ok(mut buckets) = self.buckets.lock() else {
                return (true, Duration::ZERO);
            };
            if !buckets.contains_key(&quota.sensor) {
                buckets.retain(|_, b| !b.is_full(now));
            }
            let bucket = buckets
                .entry(quota.sensor.clone())
                .or_insert_with(|| TokenBucket::full(burst, now));
            bucket.refill(quota.bound, burst, now);
            let taken = !(strict && bucket.in_debt());
            if taken {
                bucket.take(f64::from(mutations));
            }
            (taken, bucket.debt_time(quota.bound))
        };
        if !throttle.is_zero() {
            let (kind, user, client_id) = &quota.sensor;
            metrics::record_throttle(kind.label(), user, client_id, throttle);
        }
        (taken, throttle)
    }

    /// Records `busy` time spent serving one request of `client` against its
    /// `request_percentage` quota (one second busy is 100 %) and answers how long it must be
    /// throttled: at most one quota window, as Kafka bounds it, since one slow request can
    /// otherwise read as minutes of excess.
    pub fn record_busy_time(
        &self,
        image: &MetadataImage,
        client: QuotaClient,
        busy: Duration,
        now: Instant,
    ) -> Duration {
        let percent_seconds = busy.as_secs_f64() * 100.0;
        let kind = QuotaKind::Request;
        self.record_amount(image, kind, client, percent_seconds, self.window, now)
    }

    /// Records `bytes` of `kind` for `client` and answers how long it must be throttled
    /// (zero when it has no quota or is within it).
    pub fn record(
        &self,
        image: &MetadataImage,
        kind: QuotaKind,
        client: QuotaClient,
        bytes: usize,
        now: Instant,
    ) -> Duration {
        self.record_amount(image, kind, client, bytes as f64, Duration::MAX, now)
    }

    fn record_amount(
        &self,
        image: &MetadataImage,
        kind: QuotaKind,
        client: QuotaClient,
        amount: f64,
        max_throttle: Duration,
        now: Instant,
    ) -> Duration {
        let Some(quota) = applicable(image, kind, client) else {
            return Duration::ZERO;
        };
        let throttle = {
            let Ok(mut sensors) = self.sensors.lock() else {
                return Duration::ZERO;
            };
            if !sensors.contains_key(&quota.sensor) {
                // A new client: first drop the sensors of clients gone quiet, so many
                // short-lived client ids do not grow the map for ever.
                sensors.retain(|_, rate| !rate.is_idle(now));
            }
            let rate = sensors
                .entry(quota.sensor.clone())
                .or_insert_with(|| SampledRate::new(self.window, self.samples));
            rate.record(amount, now);
            rate.throttle(quota.bound, now).min(max_throttle)
        };
        if !throttle.is_zero() {
            let (kind, user, client_id) = &quota.sensor;
            metrics::record_throttle(kind.label(), user, client_id, throttle);
        }
        throttle
    }

    /// Takes back bytes recorded for a response that was not sent (a throttled fetch is
    /// answered without its records, as Kafka does).
    pub fn unrecord(
        &self,
        image: &MetadataImage,
        kind: QuotaKind,
        client: QuotaClient,
        bytes: usize,
        now: Instant,
    ) {
        let Some(quota) = applicable(image, kind, client) else {
            return;
        };
        if let Ok(mut sensors) = self.sensors.lock() {
            if let Some(rate) = sensors.get_mut(&quota.sensor) {
                rate.record(-(bytes as f64), now);
            }
        }
    }

    /// The most bytes one response may carry under `client`'s quota: a whole quota window's
    /// worth, so a client with a small quota still gets records instead of answers too big
    /// to ever pass (Kafka caps fetches the same way).
    pub fn max_bytes_per_response(
        &self,
        image: &MetadataImage,
        kind: QuotaKind,
        client: QuotaClient,
    ) -> Option<usize> {
        let quota = applicable(image, kind, client)?;
        let window = self.window.as_secs_f64() * self.samples as f64;
        Some((quota.bound * window).clamp(1.0, i32::MAX as f64) as usize)
    }
}

/// A throttle as a response's `throttle_time_ms`.
pub fn throttle_ms(throttle: Duration) -> i32 {
    throttle.as_millis().min(i32::MAX as u128) as i32
}

/// Kafka's precedence: the first of these entities with a quota of `kind` applies.
/// (user, client id) pairs first, then users alone, then client ids alone; a named entity
/// before the default one.
fn applicable(image: &MetadataImage, kind: QuotaKind, client: QuotaClient) -> Option<Applicable> {
    if image.client_quotas.is_empty() {
        return None;
    }
    let (user, client_id) = (Some(client.user), Some(client.client_id));
    let candidates: [(Component, Component); 8] = [
        (Some(user), Some(client_id)),
        (Some(user), Some(None)),
        (Some(user), None),
        (Some(None), Some(client_id)),
        (Some(None), Some(None)),
        (Some(None), None),
        (None, Some(client_id)),
        (None, Some(None)),
    ];
    candidates.iter().find_map(|&(u, c)| {
        let entity = entity_of(u, c);
        let quota = image
            .client_quotas
            .binary_search_by(|q| q.entity.cmp(&entity))
            .ok()
            .map(|at| &image.client_quotas[at])?;
        let bound = quota.values.get(kind.key())?.0;
        let tag = |named: bool, name: &str| {
            if named {
                name.to_string()
            } else {
                String::new()
            }
        };
        Some(Applicable {
            bound,
            sensor: (
                kind,
                tag(u.is_some(), client.user),
                tag(c.is_some(), client.client_id),
            ),
        })
    })
}

/// The `connection_creation_rate` quota of connections from `ip`: its own, else the default
/// of IP entities.
pub fn ip_connection_rate(image: &MetadataImage, ip: std::net::IpAddr) -> Option<f64> {
    if image.client_quotas.is_empty() {
        return None;
    }
    [Some(ip.to_string()), None].into_iter().find_map(|name| {
        let entity = QuotaEntity::from([(IP.to_string(), name)]);
        let at = image
            .client_quotas
            .binary_search_by(|q| q.entity.cmp(&entity))
            .ok()?;
        Some(
            image.client_quotas[at]
                .values
                .get(CONNECTION_CREATION_RATE)?
                .0,
        )
    })
}

/// The quota key of connections per second from one address.
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// One entity type's part of an entity: left out (None), its default (`Some(None)`), or a
/// name.
type Component<'a> = Option<Option<&'a str>>;

fn entity_of(user: Component, client_id: Component) -> QuotaEntity {
    let mut entity = QuotaEntity::new();
    if let Some(u) = user {
        entity.insert(USER.to_string(), u.map(String::from));
    }
    if let Some(c) = client_id {
        entity.insert(CLIENT_ID.to_string(), c.map(String::from));
    }
    entity
}

/// Kafka's `TokenBucket` (KIP-599): a burst of `rate × span` tokens, refilled at
/// `rate` per second; a client may overdraw it, and is throttled until it is back at zero.
struct TokenBucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    at: Instant,
}

impl TokenBucket {
    fn full(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            burst,
            rate: 0.0,
            at: now,
        }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.rate = rate;
        self.burst = burst;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
    }

    /// Whether it would be full by now: forgetting it changes nothing.
    fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }

    fn in_debt(&self) -> bool {
        self.tokens < 0.0
    }

    fn take(&mut self, tokens: f64) {
        self.tokens -= tokens;
    }

    /// How long until the debt is paid back at `rate`.
    fn debt_time(&self, rate: f64) -> Duration {
        if !self.in_debt() {
            return Duration::ZERO;
        }
        let seconds = if rate > 0.0 {
            -self.tokens / rate
        } else {
            i32::MAX as f64 / 1000.0
        };
        Duration::from_secs_f64(seconds.clamp(0.0, i32::MAX as f64 / 1000.0))
    }
}

/// Kafka's `Rate` over a `SampledStat`: the sum of the last `samples` windows divided by the
/// time they cover, counted as at least `samples - 1` whole windows so one burst at start
/// does not read as an enormous rate.
pub(crate) struct SampledRate {
    window: Duration,
    samples: usize,
    /// (start, sum) of each window, oldest first.
    windows: VecDeque<(Instant, f64)>,
}

impl SampledRate {
    pub(crate) fn new(window: Duration, samples: usize) -> Self {
        Self {
            window,
            samples: samples.max(2),
            windows: VecDeque::new(),
        }
    }

    pub(crate) fn record(&mut self, value: f64, now: Instant) {
        match self.windows.back_mut() {
            Some((start, sum)) if now.saturating_duration_since(*start) < self.window => {
                *sum += value
            }
            _ => {
                self.windows.push_back((now, value));
                if self.windows.len() > self.samples {
                    self.windows.pop_front();
                }
            }
        }
    }

    /// Whether every window has expired: the client has sent nothing for the whole span.
    pub(crate) fn is_idle(&mut self, now: Instant) -> bool {
        self.span(now);
        self.windows.is_empty()
    }

    /// Drops windows older than the whole span and answers the time the rest cover.
    fn span(&mut self, now: Instant) -> Duration {
        let expiry = self.window * self.samples as u32;
        while let Some((start, _)) = self.windows.front() {
            if now.saturating_duration_since(*start) >= expiry {
                self.windows.pop_front();
            } else {
                break;
            }
        }
        let oldest = self.windows.front().map_or(now, |(start, _)| *start);
        let elapsed = now.saturating_duration_since(oldest);
        let full = (elapsed.as_nanos() / self.window.as_nanos().max(1)) as u32;
        let min_full = self.samples as u32 - 1;
        elapsed + self.window * min_full.saturating_sub(full)
    }

    fn rate(&mut self, now: Instant) -> f64 {
        let span = self.span(now).as_secs_f64();
        let total: f64 = self.windows.iter().map(|(_, sum)| sum).sum();
        if span > 0.0 {
            total / span
        } else {
            0.0
        }
    }

    /// How long until the rate is back at `bound`: Kafka's `(rate - bound) / bound * span`.
    pub(crate) fn throttle(&mut self, bound: f64, now: Instant) -> Duration {
        let rate = self.rate(now);
        if rate <= bound {
            return Duration::ZERO;
        }
        let span = self.span(now).as_secs_f64();
        // A zero quota lets nothing through: throttle for the whole span each time.
        let seconds = if bound > 0.0 {
            (rate - bound) / bound * span
        } else {
            span
        };
        Duration::from_secs_f64(seconds.clamp(0.0, i32::MAX as f64 / 1000.0))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_controller::{ClientQuota, QuotaValue};

    use super::*;

    /// An unauthenticated connection's user.
    const ANONYMOUS: &str = "ANONYMOUS";

    fn image(quotas: &[(Component, Component, f64)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for &(u, c, v) in quotas {
            let mut values = BTreeMap::new();
            values.insert("producer_byte_rate".to_string(), QuotaValue(v));
            image.client_quotas.push(ClientQuota {
                entity: entity_of(u, c),
                values,
            });
        }
        image.client_quotas.sort_by(|a, b| a.entity.cmp(&b.entity));
        image
    }

    fn bound_for(
        image: &MetadataImage,
        user: &str,
        client_id: &str,
    ) -> Option<(f64, String, String)> {
        applicable(image, QuotaKind::Produce, QuotaClient { user, client_id })
            .map(|a| (a.bound, a.sensor.1, a.sensor.2))
    }

    #[test]
    fn precedence_is_kafkas() {
        let img = image(&[
            (None, Some(None), 1.0),                   // clients/<default>
            (None, Some(Some("c1")), 2.0),             // clients/c1
            (Some(None), None, 3.0),                   // users/<default>
            (Some(Some("u1")), None, 4.0),             // users/u1
            (Some(Some("u1")), Some(Some("c1")), 5.0), // users/u1/clients/c1
        ]);
        let s = String::from;
        assert_eq!(bound_for(&img, "u1", "c1"), Some((5.0, s("u1"), s("c1"))));
        assert_eq!(bound_for(&img, "u1", "c2"), Some((4.0, s("u1"), s(""))));
        // A user quota (here the default one) wins over any client-id quota.
        assert_eq!(bound_for(&img, "u2", "c1"), Some((3.0, s("u2"), s(""))));
        let clients_only = image(&[(None, Some(None), 1.0), (None, Some(Some("c1")), 2.0)]);
        assert_eq!(
            bound_for(&clients_only, "u2", "c1"),
            Some((2.0, s(""), s("c1")))
        );
        assert_eq!(
            bound_for(&clients_only, "u2", "c9"),
            Some((1.0, s(""), s("c9")))
        );
        assert_eq!(bound_for(&MetadataImage::default(), "u", "c"), None);
    }

    #[test]
    fn rate_counts_at_least_the_whole_span_and_throttles_the_excess() {
        let start = Instant::now();
        let mut rate = SampledRate::new(Duration::from_secs(1), 11);
        // 20 bytes at once: 20 B over a 10 s minimum span is 2 B/s.
        rate.record(20.0, start);
        assert!((rate.rate(start) - 2.0).abs() < 1e-9);
        // Over a 1 B/s bound: (2 - 1) / 1 * 10 s.
        assert_eq!(rate.throttle(1.0, start), Duration::from_secs(10));
        assert_eq!(rate.throttle(2.0, start), Duration::ZERO);
        // Once the samples have all expired nothing is left.
        let later = start + Duration::from_secs(12);
        assert!(!rate.is_idle(start));
        assert_eq!(rate.rate(later), 0.0);
        assert!(rate.is_idle(later));
    }

    #[test]
    fn a_mutation_bucket_lets_a_burst_through_then_refuses_until_the_debt_is_paid() {
        let mut img = image(&[]);
        let mut values = BTreeMap::new();
        values.insert("controller_mutation_rate".to_string(), QuotaValue(2.0));
        img.client_quotas.push(ClientQuota {
            entity: entity_of(None, Some(Some("admin"))),
            values,
        });
        let quotas = ClientQuotas {
            window: Duration::from_secs(1),
            samples: 5,
            sensors: Mutex::new(HashMap::new()),
            mutation_span: Duration::from_secs(5),
            buckets: Mutex::new(HashMap::new()),
        };
        let admin = QuotaClient {
            user: ANONYMOUS,
            client_id: "admin",
        };
        let t0 = Instant::now();
        // A burst of 2/s x 5 s = 10: 8 pass, then 8 more overdraw it by 6 (3 s at 2/s).
        assert_eq!(
            quotas.take_mutations(&img, admin, 8, true, t0),
            (true, Duration::ZERO)
        );
        assert_eq!(
            quotas.take_mutations(&img, admin, 8, true, t0),
            (true, Duration::from_secs(3))
        );
        // In debt: strict versions are refused, older ones pass and are throttled longer.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            quotas.take_mutations(&img, admin, 1, true, t1),
            (false, Duration::from_secs(2))
        );
        assert_eq!(
            quotas.take_mutations(&img, admin, 2, false, t1),
            (true, Duration::from_secs(3))
        );
        // Paid back: allowed again. Other clients have no quota.
        let t2 = t1 + Duration::from_secs(3);
        assert!(quotas.take_mutations(&img, admin, 1, true, t2).0);
        let other = QuotaClient {
            user: ANONYMOUS,
            client_id: "other",
        };
        assert_eq!(
            quotas.take_mutations(&img, other, 1_000, true, t0),
            (true, Duration::ZERO)
        );
    }
}
