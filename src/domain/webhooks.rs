//! Webhooks: subscriptions, the events they can hear of, how a message is
//! signed (the Standard Webhooks scheme), which targets are refused, and
//! when a failed delivery is tried again.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use ring::hmac;

use super::{
    DomainError, enums::string_enum, run::RunStatus, text::required_name, time::Timestamp,
    validation::ValidationStatus,
};

string_enum! {
    /// What a subscription can hear of.
    #[derive(Hash, PartialOrd, Ord)]
    pub enum EventType {
        /// A run was created.
        RunCreated = "run.created",
        /// A run reached `completed`.
        RunCompleted = "run.completed",
        /// A run reached `failed` (reported, or failed by the reaper for a
        /// subscription that does not listen to `run.heartbeat_expired`).
        RunFailed = "run.failed",
        /// A run reached `cancelled`.
        RunCancelled = "run.cancelled",
        /// The reaper failed a run whose heartbeat lapsed.
        RunHeartbeatExpired = "run.heartbeat_expired",
        /// A validation was recorded with status `failed`.
        ValidationFailed = "validation.failed",
        /// A validation was recorded with status `warning`.
        ValidationWarning = "validation.warning",
        /// Sent by the test action only; no subscription lists it.
        WebhookTest = "webhook.test",
    }
}

impl EventType {
    /// The events a subscription may list (all but the test event).
    pub fn subscribable() -> impl Iterator<Item = EventType> {
        EventType::ALL
            .into_iter()
            .filter(|e| *e != EventType::WebhookTest)
    }

    /// Whether the event is about a run (else a validation or a test).
    pub fn is_run_event(self) -> bool {
        self.as_str().starts_with("run.")
    }
}

string_enum! {
    /// How a message's body is written.
    pub enum WebhookFormat {
        /// The Standard Webhooks body: `{"type", "timestamp", "data"}`.
        Standard = "standard",
        /// A Slack incoming-webhook message: `{"text": ...}`.
        Slack = "slack",
    }
}

string_enum! {
    /// Where a message is in its delivery.
    pub enum DeliveryState {
        /// Waiting for its first or next attempt.
        Pending = "pending",
        /// A 2xx answer was received.
        Delivered = "delivered",
        /// Every attempt failed until the retry window closed.
        Failed = "failed",
    }
}

/// A subscription as stored, without its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub url: String,
    /// The events it listens to, sorted, without repeats.
    pub events: Vec<EventType>,
    /// Only events about this contract, when set.
    pub contract_id: Option<String>,
    pub format: WebhookFormat,
    pub created_at: Timestamp,
    pub created_by: String,
    /// Set when persistent failure turned the subscription off.
    pub disabled_at: Option<Timestamp>,
    pub disabled_reason: Option<String>,
}

impl Subscription {
    /// The event this subscription receives for a change that can be told
    /// as any of `candidates` (most specific first), if it listens to one,
    /// and only if the change is about its contract.
    pub fn choose(&self, contract_id: &str, candidates: &[EventType]) -> Option<EventType> {
        if self
            .contract_id
            .as_deref()
            .is_some_and(|c| c != contract_id)
        {
            return None;
        }
        candidates.iter().copied().find(|e| self.events.contains(e))
    }
}

/// One event on its way to one subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The `webhook-id` header: the same on every attempt.
    pub id: String,
    pub webhook_id: String,
    pub event_type: EventType,
    /// The run or validation the event is about.
    pub subject_id: String,
    /// The body sent, as it was when the change was made.
    pub body: String,
    pub created_at: Timestamp,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub retry_from: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

/// One try at sending a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub attempt: u32,
    pub attempted_at: Timestamp,
    /// The receiver's status code; none when no answer came.
    pub response_status: Option<u16>,
    /// Why the attempt failed, for a person; none on success.
    pub error: Option<String>,
    pub latency_ms: u64,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.response_status
            .is_some_and(|s| (200..300).contains(&s))
    }
}

/// A message with its attempts, newest last, for the delivery log.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub message: Message,
    pub attempts: Vec<Attempt>,
}

/// Longest accepted target URL.
pub const MAX_URL_LEN: usize = 2048;

/// A subscription asked for, checked.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub url: String,
    pub events: Vec<EventType>,
    pub contract_id: Option<String>,
    pub format: WebhookFormat,
}

impl NewSubscription {
    /// Checks the target and the events. With `allow_private` false, a
    /// target written as a loopback, private, link-local or metadata
    /// address is refused here; names are checked again after every DNS
    /// lookup, when a message is sent.
    pub fn new(
        url: &str,
        events: &[String],
        contract_id: Option<String>,
        format: WebhookFormat,
        allow_private: bool,
    ) -> Result<Self, DomainError> {
        let target = Target::parse(url)?;
        if !allow_private && let Some(ip) = target.literal_ip() {
            check_ip(ip)?;
        }
        let mut parsed = Vec::new();
        for name in events {
            let event = EventType::parse(name.trim())
                .filter(|e| *e != EventType::WebhookTest)
                .ok_or_else(|| {
                    DomainError::invalid(format!(
                        "unknown event '{name}'; events are: {}",
                        EventType::subscribable()
                            .map(EventType::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            parsed.push(event);
        }
        parsed.sort();
        parsed.dedup();
        if parsed.is_empty() {
            return Err(DomainError::invalid(
                "events: list at least one event, such as run.failed",
            ));
        }
        let contract_id = contract_id
            .map(|c| required_name("contract_id", &c))
            .transpose()?;
        Ok(Self {
            url: url.to_owned(),
            events: parsed,
            contract_id,
            format,
        })
    }
}

/// A target URL taken apart as far as the rules need: http or https, a
/// host, no user info (a password in a URL would end up in logs).
#[derive(Debug, Clone, PartialEq)]
pub struct Target<'a> {
    pub https: bool,
    /// The host as written, without brackets around an IPv6 address.
    pub host: &'a str,
}

impl<'a> Target<'a> {
    pub fn parse(url: &'a str) -> Result<Self, DomainError> {
        let refuse = |why: &str| {
            DomainError::invalid(format!(
                "url: {why}; give an http:// or https:// URL such as \
                 https://hooks.example.com/griot"
            ))
        };
        if url.len() > MAX_URL_LEN {
            return Err(refuse(&format!("longer than {MAX_URL_LEN} characters")));
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(refuse("holds spaces or control characters"));
        }
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(refuse("not an http or https URL"));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(refuse(
                "user names and passwords in the URL are not accepted",
            ));
        }
        let host = if let Some(v6) = authority.strip_prefix('[') {
            v6.split(']').next().unwrap_or_default()
        } else {
            authority.split(':').next().unwrap_or_default()
        };
        if host.is_empty() {
            return Err(refuse("no host"));
        }
        Ok(Self { https, host })
    }

    /// The host, when it is an IP address rather than a name.
    pub fn literal_ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// Refuses an address a webhook must not reach by default: this machine,
/// private and shared networks, link-local addresses (where clouds serve
/// instance metadata and credentials), multicast and reserved ranges.
pub fn check_ip(ip: IpAddr) -> Result<(), DomainError> {
    match forbidden_because(ip) {
        None => Ok(()),
        Some(why) => Err(DomainError::invalid(format!(
            "url: {ip} is {why}; webhook targets must be public addresses (a server started \
             with --allow-private-webhook-targets accepts private ones)"
        ))),
    }
}

fn forbidden_because(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let seg = v6.segments();
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("the unspecified address")
            } else if seg[0] & 0xfe00 == 0xfc00 {
                Some("a private (unique local) address")
            } else if seg[0] & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                // NAT64 reaches the IPv4 address in its last 32 bits.
                forbidden_v4(Ipv4Addr::from(
                    (u32::from(seg[6]) << 16) | u32::from(seg[7]),
                ))
            } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
                Some("a documentation address")
            } else {
                None
            }
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address (where cloud metadata services live)")
    } else if a == 0 {
        Some("in 0.0.0.0/8 (this network)")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("a benchmarking address")
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        Some("an IETF protocol assignment")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("a multicast, broadcast or reserved address")
    } else if ip.is_documentation() {
        Some("a documentation address")
    } else {
        None
    }
}

/// Which way a change can be told, most specific first, for the
/// subscriptions to choose from: a heartbeat expiry is
/// `run.heartbeat_expired` to whoever listens to it and `run.failed` to
/// whoever listens only to failures, never both to one subscription.
pub fn run_status_event(status: RunStatus, heartbeat_expired: bool) -> &'static [EventType] {
    match status {
        RunStatus::Failed if heartbeat_expired => {
            &[EventType::RunHeartbeatExpired, EventType::RunFailed]
        }
        RunStatus::Completed => &[EventType::RunCompleted],
        RunStatus::Failed => &[EventType::RunFailed],
        RunStatus::Cancelled => &[EventType::RunCancelled],
        RunStatus::Pending | RunStatus::Running => &[],
    }
}

/// The event a recorded validation causes, if any.
pub fn validation_event(status: ValidationStatus) -> &'static [EventType] {
    match status {
        ValidationStatus::Failed => &[EventType::ValidationFailed],
        ValidationStatus::Warning => &[EventType::ValidationWarning],
        ValidationStatus::Passed | ValidationStatus::Skipped => &[],
    }
}

/// Every secret starts with this, as the Standard Webhooks spec writes
/// them.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a secret (the spec asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// A subscription's signing secret. It must be stored as it is, to sign;
/// its `Debug` hides it so it cannot reach a log by accident.
#[derive(Clone)]
pub struct SigningSecret(String);

impl SigningSecret {
    pub fn generate() -> Result<Self, DomainError> {
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes)
            .map_err(|e| DomainError::invalid(format!("the OS random generator failed: {e}")))?;
        Ok(Self(format!("{SECRET_PREFIX}{}", BASE64.encode(bytes))))
    }

    /// A secret read back from storage.
    pub fn stored(s: String) -> Self {
        Self(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `webhook-signature` header's value for a message: `v1,` and the
    /// base64 HMAC-SHA256, keyed with the secret's decoded bytes, of
    /// `{id}.{timestamp}.{body}`.
    pub fn sign(&self, message_id: &str, unix_seconds: i64, body: &[u8]) -> String {
        let encoded = self.0.strip_prefix(SECRET_PREFIX).unwrap_or(&self.0);
        // A stored secret is always ours; an undecodable one signs with its
        // text, which a receiver will refuse, rather than stop deliveries.
        let key_bytes = BASE64
            .decode(encoded)
            .unwrap_or_else(|_| encoded.as_bytes().to_vec());
        let key = hmac::Key::new(hmac::HMAC_SHA256, &key_bytes);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(message_id.as_bytes());
        ctx.update(b".");
        ctx.update(unix_seconds.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        format!("v1,{}", BASE64.encode(ctx.sign().as_ref()))
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

/// When to try a failed message again: 1 s after the first attempt,
/// doubling to at most an hour, each spread by ±25% (`jitter` in 0..1) so
/// that receivers coming back are not hit by every sender at once.
pub fn retry_delay(attempts_made: u32, jitter: f64) -> Duration {
    const FIRST: f64 = 1.0;
    const MAX: f64 = 3600.0;
    let exp = attempts_made.saturating_sub(1).min(30);
    let base = (FIRST * f64::from(1u32 << exp.min(20))).min(MAX);
    Duration::from_secs_f64(base * (0.75 + 0.5 * jitter.clamp(0.0, 1.0)))
}

/// What the next step is after a failed attempt: another attempt at a
/// time, or none because the window since the message was made is over.
pub fn next_attempt(
    created_at: Timestamp,
    now: Timestamp,
    attempts_made: u32,
    retry_window: Duration,
    jitter: f64,
) -> Option<Timestamp> {
    let delay = retry_delay(attempts_made, jitter);
    let next = now.plus_micros(i64::try_from(delay.as_micros()).unwrap_or(i64::MAX));
    let window = i64::try_from(retry_window.as_micros()).unwrap_or(i64::MAX);
    (next.unix_micros() - created_at.unix_micros() <= window).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(events: &[EventType], contract: Option<&str>) -> Subscription {
        Subscription {
            id: "whk_1".into(),
            url: "https://example.com/".into(),
            events: events.to_vec(),
            contract_id: contract.map(Into::into),
            format: WebhookFormat::Standard,
            created_at: Timestamp::now(),
            created_by: "k".into(),
            disabled_at: None,
            disabled_reason: None,
        }
    }

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The test vector of the Standard Webhooks reference libraries.
        let secret = SigningSecret::stored("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        let sig = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_have_the_spec_shape_and_hide_in_debug() {
        let s = SigningSecret::generate().unwrap();
        let raw = BASE64
            .decode(s.expose().strip_prefix(SECRET_PREFIX).unwrap())
            .unwrap();
        assert_eq!(raw.len(), SECRET_BYTES);
        assert!(!format!("{s:?}").contains(s.expose()));
    }

    #[test]
    fn targets_are_parsed_and_private_literals_refused() {
        for ok in [
            "https://hooks.slack.com/services/T/B/x",
            "http://example.com:8080/a?b=c",
            "https://[2606:4700::1111]/x",
            "http://8.8.8.8/",
        ] {
            let t = Target::parse(ok).unwrap();
            if let Some(ip) = t.literal_ip() {
                check_ip(ip).unwrap();
            }
        }
        for bad in [
            "ftp://x/",
            "https://",
            "https://u:p@x.com/",
            "http://a b/",
            "x",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            let ip: IpAddr = private.parse().unwrap();
            assert!(check_ip(ip).is_err(), "{private} allowed");
        }
    }

    #[test]
    fn subscriptions_choose_the_most_specific_event_they_listen_to() {
        let expired = run_status_event(RunStatus::Failed, true);
        assert_eq!(
            sub(&[EventType::RunFailed], None).choose("c", expired),
            Some(EventType::RunFailed)
        );
        assert_eq!(
            sub(
                &[EventType::RunFailed, EventType::RunHeartbeatExpired],
                None
            )
            .choose("c", expired),
            Some(EventType::RunHeartbeatExpired)
        );
        assert_eq!(
            sub(&[EventType::RunFailed], Some("other")).choose("c", expired),
            None
        );
        assert_eq!(
            sub(&[EventType::RunCompleted], Some("c")).choose("c", expired),
            None
        );
    }

    #[test]
    fn events_are_checked_sorted_and_deduplicated() {
        let ok = NewSubscription::new(
            "https://example.com/",
            &[
                "run.failed".into(),
                " run.created".into(),
                "run.failed".into(),
            ],
            None,
            WebhookFormat::Standard,
            false,
        )
        .unwrap();
        assert_eq!(ok.events, [EventType::RunCreated, EventType::RunFailed]);
        for bad in [
            vec![],
            vec!["run.exploded".to_string()],
            vec!["webhook.test".into()],
        ] {
            assert!(
                NewSubscription::new(
                    "https://example.com/",
                    &bad,
                    None,
                    WebhookFormat::Standard,
                    false
                )
                .is_err()
            );
        }
        assert!(
            NewSubscription::new(
                "http://127.0.0.1:9/",
                &["run.failed".into()],
                None,
                WebhookFormat::Standard,
                true
            )
            .is_ok()
        );
    }

    #[test]
    fn retries_back_off_and_stop_at_the_window() {
        assert_eq!(retry_delay(1, 0.5), Duration::from_secs(1));
        assert_eq!(retry_delay(4, 0.5), Duration::from_secs(8));
        assert_eq!(retry_delay(40, 0.5), Duration::from_secs(3600));
        assert!(retry_delay(3, 0.0) < retry_delay(3, 1.0));
        let t0 = Timestamp::now();
        let day = Duration::from_secs(86_400);
        assert!(next_attempt(t0, t0, 1, day, 0.5).is_some());
        assert!(next_attempt(t0, t0.plus_seconds(86_399), 5, day, 0.5).is_none());
    }
}
