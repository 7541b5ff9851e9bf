//! Who may write (client tokens) and which requests were already applied (`dd-request-id`).
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One accepted client token, optionally bound to the one service it may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientToken {
    /// The token (`dd-api-key`).
    pub token: String,
    /// The service events sent with this token must name; `None` accepts any.
    pub service: Option<String>,
}

/// The accepted client tokens; empty accepts every request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTokens(Vec<ClientToken>);

impl ClientTokens {
    /// Parses `SW_RUM_CLIENT_TOKENS`: comma-separated `token` or `token:service` entries.
    pub fn parse(text: &str) -> Self {
        ClientTokens(
            text.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|entry| match entry.split_once(':') {
                    Some((token, service)) => ClientToken {
                        token: token.trim().to_owned(),
                        service: Some(service.trim().to_owned()).filter(|s| !s.is_empty()),
                    },
                    None => ClientToken {
                        token: entry.to_owned(),
                        service: None,
                    },
                })
                .collect(),
        )
    }

    /// Whether every token is accepted (no list configured).
    pub fn accepts_all(&self) -> bool {
        self.0.is_empty()
    }

    /// The entry of `token`, `None` when it is not on the list.
    pub fn find(&self, token: &str) -> Option<&ClientToken> {
        self.0.iter().find(|t| t.token == token)
    }
}

/// How long an accepted request id is remembered.
pub(crate) const REQUEST_ID_WINDOW: Duration = Duration::from_secs(3600);

/// Most request ids remembered at once (about 100 bytes each); past it the oldest are forgotten
/// early.
pub(crate) const REQUEST_IDS_MAX: usize = 200_000;

/// Where a request id stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Not seen: the caller applies the request, then calls `accepted` or `release`.
    New,
    /// Accepted within the window: answer 202 without applying it again.
    Duplicate,
    /// Being applied by another request right now: the client should retry.
    InFlight,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    InFlight,
    Accepted,
}

/// The request ids accepted within the last hour (bounded in count), so a batch the SDK retries
/// with the same `dd-request-id` is not applied twice.
#[derive(Debug)]
pub(crate) struct RequestIds {
    window: Duration,
    capacity: usize,
    inner: Mutex<Ids>,
}

#[derive(Debug, Default)]
struct Ids {
    states: HashMap<String, (State, Instant)>,
    /// Ids by the time they were claimed, oldest first (may hold ids already released).
    order: VecDeque<(Instant, String)>,
}

impl RequestIds {
    pub(crate) fn new(window: Duration, capacity: usize) -> Self {
        RequestIds {
            window,
            capacity: capacity.max(1),
            inner: Mutex::new(Ids::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ids> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims `id` for applying now.
    pub(crate) fn claim(&self, id: &str, now: Instant) -> Claim {
        let mut ids = self.lock();
        self.expire(&mut ids, now);
        match ids.states.get(id) {
            Some((State::Accepted, _)) => return Claim::Duplicate,
            Some((State::InFlight, _)) => return Claim::InFlight,
            None => {}
        }
        // Every remembered id has an entry in `order`, so bounding `order` bounds both.
        while ids.order.len() >= self.capacity {
            let Some((claimed, oldest)) = ids.order.pop_front() else {
                break;
            };
            if ids
                .states
                .get(&oldest)
                .is_some_and(|(_, at)| *at <= claimed)
            {
                ids.states.remove(&oldest);
            }
        }
        ids.states.insert(id.to_owned(), (State::InFlight, now));
        ids.order.push_back((now, id.to_owned()));
        Claim::New
    }

    /// Marks a claimed id as applied.
    pub(crate) fn accepted(&self, id: &str) {
        if let Some(entry) = self.lock().states.get_mut(id) {
            entry.0 = State::Accepted;
        }
    }

    /// Forgets a claimed id whose request failed, so its retry is applied.
    pub(crate) fn release(&self, id: &str) {
        let mut ids = self.lock();
        if matches!(ids.states.get(id), Some((State::InFlight, _))) {
            ids.states.remove(id);
        }
    }

    fn expire(&self, ids: &mut Ids, now: Instant) {
        while let Some((claimed, _)) = ids.order.front() {
            let claimed = *claimed;
            if now.saturating_duration_since(claimed) < self.window {
                break;
            }
            if let Some((_, id)) = ids.order.pop_front() {
                // Only forget it if this queue entry is the live one (a released id may have
                // been claimed again later).
                if ids.states.get(&id).is_some_and(|(_, at)| *at <= claimed) {
                    ids.states.remove(&id);
                }
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().states.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_with_optional_services() {
        let tokens = ClientTokens::parse(" pubA , pubB:shop ,,");
        assert!(!tokens.accepts_all());
        assert_eq!(tokens.find("pubA").unwrap().service, None);
        assert_eq!(
            tokens.find("pubB").unwrap().service.as_deref(),
            Some("shop")
        );
        assert!(tokens.find("pubC").is_none());
        assert!(ClientTokens::parse("").accepts_all());
    }

    #[test]
    fn an_id_is_applied_once_within_the_window() {
        let ids = RequestIds::new(Duration::from_secs(3600), 10);
        let t0 = Instant::now();
        assert_eq!(ids.claim("a", t0), Claim::New);
        assert_eq!(ids.claim("a", t0), Claim::InFlight);
        ids.accepted("a");
        assert_eq!(
            ids.claim("a", t0 + Duration::from_secs(3599)),
            Claim::Duplicate
        );
        assert_eq!(ids.claim("a", t0 + Duration::from_secs(3601)), Claim::New);
        // A failed request is forgotten, so its retry applies.
        assert_eq!(ids.claim("b", t0 + Duration::from_secs(3601)), Claim::New);
        ids.release("b");
        assert_eq!(ids.claim("b", t0 + Duration::from_secs(3602)), Claim::New);
    }

    #[test]
    fn memory_stays_bounded() {
        let ids = RequestIds::new(Duration::from_secs(3600), 100);
        let t0 = Instant::now();
        for i in 0..10_000 {
            ids.claim(&format!("id-{i}"), t0);
            ids.accepted(&format!("id-{i}"));
        }
        assert!(ids.len() <= 100);
        assert_eq!(ids.claim("id-9999", t0), Claim::Duplicate);
    }
}
