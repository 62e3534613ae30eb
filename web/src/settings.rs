//! The client settings form: the page's defaults, and the form's text fields to and from
//! a [`ClientConfig`].
//!
//! Times are entered in seconds (decimals allowed), the backoff multiplier as a factor and
//! the jitter as a fraction, the way grpc-go and gRPC's `connection-backoff.md` state them.

use crate::fmt::trim_float;
use keepalive::client::ClientConfig;
use std::time::Duration;

/// The page's client settings: grpc-go's meanings with demo values, so that a dead
/// connection shows within seconds (Time 2 s, Timeout 2 s) and gRPC's backoff.
pub fn page_defaults() -> ClientConfig {
    ClientConfig {
        keepalive_time: Duration::from_secs(2),
        keepalive_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    }
}

/// The form's fields, as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsForm {
    /// Keepalive Time, seconds.
    pub time_s: String,
    /// Keepalive Timeout, seconds.
    pub timeout_s: String,
    /// PermitWithoutStream.
    pub permit_without_stream: bool,
    /// First backoff delay, seconds.
    pub backoff_initial_s: String,
    /// Backoff growth factor.
    pub backoff_multiplier: String,
    /// Backoff jitter, a fraction (0.2 = ±20%).
    pub backoff_jitter: String,
    /// Largest backoff delay, seconds.
    pub backoff_max_s: String,
}

impl SettingsForm {
    /// The fields showing `config`.
    pub fn from_config(config: &ClientConfig) -> Self {
        let secs = |d: Duration| trim_float(d.as_secs_f64());
        SettingsForm {
            time_s: secs(config.keepalive_time),
            timeout_s: secs(config.keepalive_timeout),
            permit_without_stream: config.permit_without_stream,
            backoff_initial_s: secs(config.backoff.initial),
            backoff_multiplier: trim_float(config.backoff.multiplier),
            backoff_jitter: trim_float(config.backoff.jitter),
            backoff_max_s: secs(config.backoff.max),
        }
    }

    /// `base` with the form's values, or what is wrong with them (one message per field).
    pub fn to_config(&self, base: &ClientConfig) -> Result<ClientConfig, Vec<String>> {
        let mut errors = Vec::new();
        let mut secs = |name: &str, text: &str, min: f64, max: f64| -> Duration {
            match number(text) {
                Some(v) if (min..=max).contains(&v) => Duration::from_secs_f64(v),
                _ => {
                    errors.push(format!("{name}: seconds between {min} and {max}"));
                    Duration::ZERO
                }
            }
        };
        let time = secs("Time", &self.time_s, 0.1, 7200.0);
        let timeout = secs("Timeout", &self.timeout_s, 0.1, 600.0);
        let initial = secs("Backoff initial", &self.backoff_initial_s, 0.1, 600.0);
        let max = secs("Backoff max", &self.backoff_max_s, 0.1, 3600.0);
        let multiplier = number(&self.backoff_multiplier).filter(|m| (1.0..=10.0).contains(m));
        if multiplier.is_none() {
            errors.push("Backoff multiplier: a factor between 1 and 10".into());
        }
        let jitter = number(&self.backoff_jitter).filter(|j| (0.0..1.0).contains(j));
        if jitter.is_none() {
            errors.push("Backoff jitter: a fraction from 0 up to (not including) 1".into());
        }
        if errors.is_empty() && max < initial {
            errors.push("Backoff max: at least the initial delay".into());
        }
        match (multiplier, jitter) {
            (Some(multiplier), Some(jitter)) if errors.is_empty() => {
                let mut config = *base;
                config.keepalive_time = time;
                config.keepalive_timeout = timeout;
                config.permit_without_stream = self.permit_without_stream;
                config.backoff.initial = initial;
                config.backoff.multiplier = multiplier;
                config.backoff.jitter = jitter;
                config.backoff.max = max;
                Ok(config)
            }
            _ => Err(errors),
        }
    }
}

fn number(text: &str) -> Option<f64> {
    text.trim()
        .replace(',', ".")
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_of_the_defaults() {
        let defaults = page_defaults();
        let form = SettingsForm::from_config(&defaults);
        assert_eq!(form.time_s, "2");
        assert_eq!(form.timeout_s, "2");
        assert_eq!(form.backoff_initial_s, "1");
        assert_eq!(form.backoff_multiplier, "1.6");
        assert_eq!(form.backoff_jitter, "0.2");
        assert_eq!(form.backoff_max_s, "120");
        assert_eq!(form.to_config(&defaults), Ok(defaults));
    }

    #[test]
    fn edits_apply() {
        let mut form = SettingsForm::from_config(&page_defaults());
        form.time_s = "0,5".into();
        form.timeout_s = " 1.5 ".into();
        form.permit_without_stream = true;
        form.backoff_max_s = "10".into();
        let c = form.to_config(&page_defaults()).expect("valid");
        assert_eq!(c.keepalive_time, Duration::from_millis(500));
        assert_eq!(c.keepalive_timeout, Duration::from_millis(1500));
        assert!(c.permit_without_stream);
        assert_eq!(c.backoff.max, Duration::from_secs(10));
    }

    #[test]
    fn mistakes_are_named() {
        let mut form = SettingsForm::from_config(&page_defaults());
        form.time_s = "soon".into();
        form.backoff_multiplier = "0.5".into();
        form.backoff_jitter = "1".into();
        let errors = form.to_config(&page_defaults()).expect_err("invalid");
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("Time"), "{errors:?}");

        let mut form = SettingsForm::from_config(&page_defaults());
        form.backoff_initial_s = "5".into();
        form.backoff_max_s = "2".into();
        let errors = form.to_config(&page_defaults()).expect_err("max < initial");
        assert!(errors[0].starts_with("Backoff max"), "{errors:?}");
    }
}
