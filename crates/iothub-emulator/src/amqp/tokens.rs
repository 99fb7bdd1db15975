//! The tokens an AMQP connection holds (docs/amqp.md "Authentication"): those put on its
//! `$cbs` node, by audience, and the one SASL PLAIN gave. Sans-IO: it stores and answers; the
//! hub verifies each token when a link needs it, and the link tasks watch the expiry of the
//! token that authorised them.
//!
//! A put-token for an audience the connection already has replaces that token (renewal, on
//! the same `$cbs` link, at about 90 % of the lifetime): links it authorised keep running
//! with the new expiry.

/// Where a token came from, which is also the key renewals replace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenSource {
    /// SASL PLAIN's password.
    SaslPlain,
    /// A CBS put-token for this audience (`name` application property).
    Cbs(String),
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SaslPlain => f.write_str("SASL PLAIN"),
            Self::Cbs(audience) => write!(f, "CBS token for `{audience}`"),
        }
    }
}

/// One token held by a connection.
#[derive(Clone, PartialEq, Eq)]
pub struct HeldToken {
    /// Where it came from.
    pub source: TokenSource,
    /// The `SharedAccessSignature …` text. Never logged.
    pub token: String,
    /// Its `se`, Unix seconds.
    pub expires_unix_secs: u64,
}

impl std::fmt::Debug for HeldToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldToken")
            .field("source", &self.source)
            .field("expires_unix_secs", &self.expires_unix_secs)
            .finish_non_exhaustive()
    }
}

/// The tokens of one connection, newest put first.
///
/// ```
/// use iothub_emulator::amqp::tokens::{TokenSource, TokenTable};
/// let mut tokens = TokenTable::default();
/// let audience = TokenSource::Cbs("sb://127.0.0.1/hub".into());
/// tokens.put(audience.clone(), "SharedAccessSignature sr=a&sig=b&se=100".into(), 100);
/// tokens.put(audience.clone(), "SharedAccessSignature sr=a&sig=c&se=200".into(), 200);
/// assert_eq!(tokens.expiry_of(&audience), Some(200));
/// assert_eq!(tokens.iter().count(), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenTable {
    held: Vec<HeldToken>,
}

/// A connection holds at most this many tokens (one per audience); the oldest goes first.
/// Real clients use one to three.
pub const MAX_TOKENS: usize = 16;

impl TokenTable {
    /// Stores `token` for `source`, replacing the one it had.
    pub fn put(&mut self, source: TokenSource, token: String, expires_unix_secs: u64) {
        self.held.retain(|t| t.source != source);
        if self.held.len() == MAX_TOKENS {
            self.held.pop();
        }
        self.held.insert(
            0,
            HeldToken {
                source,
                token,
                expires_unix_secs,
            },
        );
    }

    /// The tokens to try for a link, newest first.
    pub fn iter(&self) -> impl Iterator<Item = &HeldToken> {
        self.held.iter()
    }

    /// When the token from `source` expires, if the connection still holds one.
    #[must_use]
    pub fn expiry_of(&self, source: &TokenSource) -> Option<u64> {
        self.held
            .iter()
            .find(|t| t.source == *source)
            .map(|t| t.expires_unix_secs)
    }

    /// Whether a link authorised by `source` must be detached at `now` (Unix seconds): its
    /// token is gone or expired and was not renewed.
    #[must_use]
    pub fn lapsed(&self, source: &TokenSource, now: u64) -> bool {
        self.expiry_of(source).is_none_or(|se| se <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cbs(a: &str) -> TokenSource {
        TokenSource::Cbs(a.into())
    }

    #[test]
    fn renewal_replaces_and_extends() {
        let mut t = TokenTable::default();
        t.put(cbs("a"), "t1".into(), 100);
        assert!(!t.lapsed(&cbs("a"), 99));
        assert!(t.lapsed(&cbs("a"), 100));
        t.put(cbs("a"), "t2".into(), 200);
        assert!(!t.lapsed(&cbs("a"), 150));
        assert_eq!(
            t.iter().map(|h| h.token.as_str()).collect::<Vec<_>>(),
            ["t2"]
        );
    }

    #[test]
    fn unknown_source_has_lapsed() {
        let t = TokenTable::default();
        assert!(t.lapsed(&TokenSource::SaslPlain, 0));
    }

    #[test]
    fn newest_first_and_bounded() {
        let mut t = TokenTable::default();
        for i in 0..(MAX_TOKENS as u64 + 3) {
            t.put(cbs(&i.to_string()), format!("t{i}"), i);
        }
        assert_eq!(t.iter().count(), MAX_TOKENS);
        assert_eq!(
            t.iter().next().unwrap().token,
            format!("t{}", MAX_TOKENS + 2)
        );
        assert_eq!(t.expiry_of(&cbs("0")), None, "the oldest went first");
    }

    #[test]
    fn debug_never_prints_the_token() {
        let mut t = TokenTable::default();
        t.put(
            TokenSource::SaslPlain,
            "SharedAccessSignature sig=secret".into(),
            1,
        );
        assert!(!format!("{t:?}").contains("secret"));
    }
}
