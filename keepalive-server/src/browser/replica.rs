//! This process as one replica of a deployment: its name, the keys its session ids are
//! signed with, and (feature `redis`) the session state it shares with the other replicas.
//!
//! A server alone needs none of it: [`Replica::single`] names it after the host and the
//! process, and signs with a random key. Several replicas behind a load balancer share a
//! secret (`--session-secret`, so any of them accepts a session another opened) and a
//! Redis (`--redis`, so heartbeats reaching one replica count the stream open on another,
//! and a stream resumed on one ends its older self on another); see
//! [`crate::redis`].

use super::tokens::SessionKeys;
use keepalive::settings::SettingsError;
use std::sync::Arc;

/// One replica; see the module docs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Replica {
    name: Arc<str>,
    keys: Arc<SessionKeys>,
    #[cfg(feature = "redis")]
    shared: Option<crate::redis::SharedSessions>,
}

/// `HOST-PID`: unique among the processes of a deployment.
pub fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "server".to_owned());
    format!("{host}-{}", std::process::id())
}

impl Replica {
    /// A server alone: [`default_name`], a random signing key.
    ///
    /// # Errors
    /// If the OS CSPRNG fails.
    pub fn single() -> Result<Self, getrandom::Error> {
        Ok(Self::new(default_name(), SessionKeys::random()?))
    }

    /// A replica named `name` (unique among the replicas) whose session ids are signed
    /// with `keys` (the same on every replica).
    pub fn new(name: impl Into<String>, keys: SessionKeys) -> Self {
        Replica {
            name: name.into().into(),
            keys: Arc::new(keys),
            #[cfg(feature = "redis")]
            shared: None,
        }
    }

    /// Shares stream presence and fencing through `shared`.
    #[cfg(feature = "redis")]
    pub fn sharing(mut self, shared: crate::redis::SharedSessions) -> Self {
        self.shared = Some(shared);
        self
    }

    /// The replica's name (in Welcome, OpenSession and Heartbeat answers).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The keys session ids are signed with.
    pub fn keys(&self) -> Arc<SessionKeys> {
        self.keys.clone()
    }

    /// The shared session state, if any.
    #[cfg(feature = "redis")]
    pub fn shared(&self) -> Option<&crate::redis::SharedSessions> {
        self.shared.as_ref()
    }

    /// Whether another replica holds a live stream of the session `key`. Without shared
    /// state: no. With it, when Redis does not answer: yes — a heartbeat is then judged
    /// leniently rather than a session ended for a failure that is not its own.
    pub async fn streams_elsewhere(&self, key: &str) -> bool {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            return shared.streams_elsewhere(key).await.unwrap_or(true);
        }
        let _ = key;
        false
    }
}

/// One `--session-secret KID=SECRET`; its `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSecret {
    /// The key id (in every session id it signs).
    pub kid: String,
    /// The secret (16+ bytes).
    pub secret: String,
}

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionSecret({}=…)", self.kid)
    }
}

impl std::str::FromStr for SessionSecret {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (kid, secret) = s
            .split_once('=')
            .ok_or_else(|| "--session-secret takes KID=SECRET".to_owned())?;
        Ok(SessionSecret {
            kid: kid.to_owned(),
            secret: secret.to_owned(),
        })
    }
}

/// What makes this process a replica, as flags (and TOML keys).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct ReplicaSettings {
    /// This replica's name, unique among the replicas [default: HOST-PID].
    #[cfg_attr(
        feature = "cli",
        arg(id = "replica_name", long = "replica-name", value_name = "NAME")
    )]
    pub replica_name: Option<String>,
    /// KID=SECRET (16+ bytes) to sign session ids with, the same on every replica; repeat
    /// it to rotate (the first signs, all verify) [default: a random key, this process only].
    #[cfg_attr(
        feature = "cli",
        arg(
            id = "session_secret",
            long = "session-secret",
            value_name = "KID=SECRET"
        )
    )]
    pub session_secret: Vec<SessionSecret>,
    /// The Redis the replicas share (`redis://HOST:PORT/DB`): stream presence and fencing
    /// of sessions [default: none, a server alone].
    #[cfg_attr(feature = "cli", arg(id = "redis", long = "redis", value_name = "URL"))]
    pub redis: Option<String>,
}

impl ReplicaSettings {
    /// Checks the settings; the error names the flag, in one line.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.keys().map(|_| ())
    }

    fn keys(&self) -> Result<Option<SessionKeys>, SettingsError> {
        if self.session_secret.is_empty() {
            return Ok(None);
        }
        let pairs: Vec<(String, String)> = self
            .session_secret
            .iter()
            .map(|s| (s.kid.clone(), s.secret.clone()))
            .collect();
        SessionKeys::from_secrets(&pairs)
            .map(Some)
            .map_err(SettingsError)
    }

    /// The replica these settings describe (connecting to Redis when one is named).
    ///
    /// # Errors
    /// Bad settings, Redis not reachable, or `--redis` without the `redis` feature.
    pub async fn replica(&self) -> Result<Replica, String> {
        let keys = match self.keys().map_err(|e| e.0)? {
            Some(keys) => keys,
            None => {
                if self.redis.is_some() {
                    // Not an error: one server on Redis (for its log) is fine alone.
                    tracing::warn!(
                        "--redis without --session-secret: this replica signs session ids \
                         with a key of its own, so a session cannot move to another replica; \
                         give every replica the same --session-secret"
                    );
                }
                SessionKeys::random().map_err(|e| format!("no randomness for a key: {e}"))?
            }
        };
        let name = self.replica_name.clone().unwrap_or_else(default_name);
        let replica = Replica::new(name, keys);
        match &self.redis {
            None => Ok(replica),
            #[cfg(feature = "redis")]
            Some(url) => {
                let store = crate::redis::RedisStore::new(url).map_err(|e| e.0)?;
                let shared = crate::redis::SharedSessions::new(&store, replica.name())
                    .await
                    .map_err(|e| e.0)?;
                Ok(replica.sharing(shared))
            }
            #[cfg(not(feature = "redis"))]
            Some(_) => Err("--redis needs keepalive-server's `redis` feature".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_checked_with_the_flag_name() {
        let secret = |s: &str| s.parse::<SessionSecret>();
        let ok = ReplicaSettings {
            session_secret: vec![secret("k1=0123456789abcdef").expect("parses")],
            ..ReplicaSettings::default()
        };
        assert!(ok.validate().is_ok());
        assert!(!format!("{ok:?}").contains("0123456789abcdef"));
        assert!(secret("k1").expect_err("no =").contains("--session-secret"));
        for bad in ["k1=short", "=0123456789abcdef"] {
            let s = ReplicaSettings {
                session_secret: vec![secret(bad).expect("parses")],
                ..ReplicaSettings::default()
            };
            let e = s.validate().expect_err(bad);
            assert!(e.0.contains("--session-secret"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_default_name_has_the_pid() {
        assert!(default_name().ends_with(&format!("-{}", std::process::id())));
    }
}
