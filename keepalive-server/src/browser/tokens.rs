//! Session ids that every replica can verify: signed, not stored.
//!
//! A browser's calls land on whichever replica the load balancer picks, and the replica
//! that opened the session may be gone. So a session id carries its own proof: a random
//! part (the session's identity), an expiry, the id of the key that signed it, and an
//! HMAC-SHA256 of all three under a secret the replicas share (`--session-secret
//! KID=SECRET`, several for a rotation: the first signs, all verify). Any replica accepts
//! it without a lookup; a forged, altered or expired one is refused everywhere
//! (UNAUTHENTICATED). The resume token is derived from the session the same way, so it
//! too is the same on every replica.
//!
//! Why not keep sessions in Redis: a lookup on every call puts Redis on the path of every
//! heartbeat, and a token minted by a replica that died would need that replica's write
//! to have landed. A signature needs neither.
//!
//! Without a secret, one process makes a random one: its ids are valid on it alone (a
//! single server, as before; a restart makes clients open new sessions).
//!
//! Format: `s1.<kid>.<random: 32 hex>.<expiry: unix seconds>.<mac: 32 hex>`, the MAC over
//! everything before its dot, truncated to 128 bits.

use ring::hmac;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The version prefix of a session id.
const VERSION: &str = "s1";
/// Default `--session-ttl`: how long a session id is valid after it was made.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(24 * 3600);

/// Why a session id is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a session id at all.
    Malformed,
    /// Signed with a key this server does not have.
    UnknownKey,
    /// The signature does not match (forged or altered).
    BadSignature,
    /// Past its expiry.
    Expired,
}

impl TokenError {
    /// The message the client gets.
    pub fn message(self) -> &'static str {
        match self {
            TokenError::Malformed | TokenError::UnknownKey | TokenError::BadSignature => {
                "invalid session id"
            }
            TokenError::Expired => "session expired",
        }
    }
}

/// What a verified session id says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The random part: the session's identity (names its Redis key, its log source).
    pub key: String,
    /// The signing key's id.
    pub kid: String,
    /// Unix seconds after which it is refused.
    pub expires: u64,
}

/// The keys session ids are signed and verified with.
pub struct SessionKeys {
    /// (kid, key); the first signs.
    keys: Vec<(String, hmac::Key)>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("SessionKeys").field("kids", &kids).finish()
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl SessionKeys {
    /// One random key, for a server alone (its ids are valid on it only).
    ///
    /// # Errors
    /// If the OS CSPRNG fails.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)?;
        Ok(SessionKeys {
            keys: vec![(
                "local".to_owned(),
                hmac::Key::new(hmac::HMAC_SHA256, &secret),
            )],
        })
    }

    /// Keys from `(kid, secret)` pairs; the first signs.
    ///
    /// # Errors
    /// No pair, an empty or dotted kid, or a secret under 16 bytes, in one line.
    pub fn from_secrets(secrets: &[(String, String)]) -> Result<Self, String> {
        if secrets.is_empty() {
            return Err("--session-secret: at least one KID=SECRET".into());
        }
        let mut keys = Vec::new();
        for (kid, secret) in secrets {
            if kid.is_empty() || kid.contains('.') || !kid.is_ascii() {
                return Err(format!(
                    "--session-secret: the key id {kid:?} must be non-empty ASCII without dots"
                ));
            }
            if secret.len() < 16 {
                return Err(format!(
                    "--session-secret {kid}=…: the secret must be at least 16 bytes"
                ));
            }
            keys.push((
                kid.clone(),
                hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            ));
        }
        Ok(SessionKeys { keys })
    }

    fn key(&self, kid: &str) -> Option<&hmac::Key> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }

    fn mac(key: &hmac::Key, text: &str) -> String {
        hex(&hmac::sign(key, text.as_bytes()).as_ref()[..16])
    }

    /// A new session id valid for `ttl` from `now` (unix seconds).
    ///
    /// # Errors
    /// If the OS CSPRNG fails.
    pub fn mint(&self, now: u64, ttl: Duration) -> Result<String, getrandom::Error> {
        let random = super::ids::random_hex128()?;
        let (kid, key) = &self.keys[0];
        let body = format!(
            "{VERSION}.{kid}.{random}.{}",
            now.saturating_add(ttl.as_secs())
        );
        let mac = Self::mac(key, &body);
        Ok(format!("{body}.{mac}"))
    }

    /// Verifies `token` at `now` (unix seconds).
    ///
    /// # Errors
    /// Why it is refused.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let (body, mac) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let mut parts = body.split('.');
        let (Some(VERSION), Some(kid), Some(random), Some(expires), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        if random.len() != 32 || !random.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenError::Malformed);
        }
        let expires: u64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        let key = self.key(kid).ok_or(TokenError::UnknownKey)?;
        let want = Self::mac(key, body);
        if !super::ids::ct_eq(&want, mac) {
            return Err(TokenError::BadSignature);
        }
        if now > expires {
            return Err(TokenError::Expired);
        }
        Ok(Claims {
            key: random.to_owned(),
            kid: kid.to_owned(),
            expires,
        })
    }

    /// The resume token of the session `claims` names: the same on every replica.
    pub fn resume_token(&self, claims: &Claims) -> String {
        let key = self.key(&claims.kid).unwrap_or(&self.keys[0].1);
        Self::mac(key, &format!("resume.{}", claims.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pairs: &[(&str, &str)]) -> SessionKeys {
        SessionKeys::from_secrets(
            &pairs
                .iter()
                .map(|(k, s)| ((*k).to_owned(), (*s).to_owned()))
                .collect::<Vec<_>>(),
        )
        .expect("keys")
    }

    #[test]
    fn minted_on_one_replica_verified_on_another() {
        let a = keys(&[("k1", "0123456789abcdef-shared")]);
        let b = keys(&[("k1", "0123456789abcdef-shared")]);
        let id = a.mint(1000, Duration::from_secs(60)).expect("mint");
        let claims = b.verify(&id, 1030).expect("valid on b");
        assert_eq!(claims.expires, 1060);
        assert_eq!(a.resume_token(&claims), b.resume_token(&claims));
        assert_eq!(b.verify(&id, 1061), Err(TokenError::Expired));
    }

    #[test]
    fn forged_altered_or_foreign_ids_are_refused() {
        let a = keys(&[("k1", "0123456789abcdef-shared")]);
        let other = keys(&[("k1", "another secret, 16+")]);
        let id = a.mint(1000, Duration::from_secs(60)).expect("mint");
        assert_eq!(other.verify(&id, 1000), Err(TokenError::BadSignature));
        // A longer expiry, same MAC: refused.
        let (body, mac) = id.rsplit_once('.').expect("mac");
        let (head, _) = body.rsplit_once('.').expect("expiry");
        let stretched = format!("{head}.9999999999.{mac}");
        assert_eq!(a.verify(&stretched, 1000), Err(TokenError::BadSignature));
        assert_eq!(a.verify("nope", 0), Err(TokenError::Malformed));
        assert_eq!(
            a.verify(&id.replacen("k1", "k9", 1), 1000),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn rotation_signs_with_the_first_and_verifies_with_all() {
        let old = keys(&[("k1", "0123456789abcdef-one")]);
        let rotated = keys(&[
            ("k2", "0123456789abcdef-two"),
            ("k1", "0123456789abcdef-one"),
        ]);
        let before = old.mint(0, Duration::from_secs(60)).expect("mint");
        assert!(rotated.verify(&before, 1).is_ok());
        let after = rotated.mint(0, Duration::from_secs(60)).expect("mint");
        assert!(after.starts_with("s1.k2."));
        assert_eq!(old.verify(&after, 1), Err(TokenError::UnknownKey));
    }

    #[test]
    fn bad_secrets_are_refused_with_the_flag_name() {
        assert!(SessionKeys::from_secrets(&[]).is_err());
        let e = SessionKeys::from_secrets(&[("k1".into(), "short".into())]).expect_err("short");
        assert!(e.contains("--session-secret"), "{e}");
        assert!(SessionKeys::from_secrets(&[("a.b".into(), "0123456789abcdef".into())]).is_err());
    }
}
