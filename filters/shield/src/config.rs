//! The configuration of `shield`: the stages to run, in order, each with the configuration object
//! its standalone filter takes.
//!
//! ```json
//! {"stages": [
//!   {"filter": "header-strip", "config": {"strip": ["x-user-email"]}},
//!   {"filter": "request-id"},
//!   {"filter": "jwt-auth", "config": {"providers": {...}, "rules": [...]}},
//!   {"filter": "rate-limit", "config": {...}},
//!   {"filter": "waf", "config": {"mode": "block"}}
//! ]}
//! ```
//!
//! A stage's `config` is handed to that filter's own parser, so an error names the field inside
//! it: `stages[2].config.providers.main.issuer`.

use serde::Deserialize;
use shield_kit::config::{ConfigError, parse_json};
use shield_kit::stage::{Stage, StageBuilder};

/// The filters a stage can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filter {
    /// `header-strip`: removes identity headers a client could forge.
    HeaderStrip,
    /// `request-id`: one validated request ID per request, end to end.
    RequestId,
    /// `jwt-auth`: verifies bearer tokens, passes verified claims on as headers.
    JwtAuth,
    /// `rate-limit`: token buckets per IP, API key, user, path, route or globally.
    RateLimit,
    /// `waf`: the rule engine (built-in rules, or OWASP CRS in `shield-crs`).
    Waf,
}

impl Filter {
    /// The filter's name, as in `filter`.
    pub fn name(self) -> &'static str {
        match self {
            Filter::HeaderStrip => "header-strip",
            Filter::RequestId => "request-id",
            Filter::JwtAuth => "jwt-auth",
            Filter::RateLimit => "rate-limit",
            Filter::Waf => "waf",
        }
    }

    /// The filter's stage builder: the same one its standalone module runs.
    fn builder(self) -> StageBuilder {
        match self {
            Filter::HeaderStrip => header_strip::stage::build,
            Filter::RequestId => request_id::stage::build,
            Filter::JwtAuth => jwt_auth::stage::build,
            Filter::RateLimit => rate_limit::stage::build,
            Filter::Waf => waf::stage::build,
        }
    }
}

/// One stage.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Which filter runs.
    pub filter: Filter,
    /// Its configuration, exactly as the standalone filter takes it; absent means that filter's
    /// defaults (as an empty plugin configuration would).
    #[serde(default)]
    pub config: serde_json::Value,
}

/// The whole configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShieldConfig {
    /// The stages, in the order a chain of the standalone filters would run them.
    pub stages: Vec<StageConfig>,
}

impl ShieldConfig {
    /// Parses and checks the stage list (not the stages' own configurations).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config: ShieldConfig = parse_json(bytes)?;
        if config.stages.is_empty() {
            return Err(ConfigError::new("stages", "at least one stage is required"));
        }
        for (index, stage) in config.stages.iter().enumerate() {
            let earlier = config.stages.iter().take(index).any(|other| other.filter == stage.filter);
            if earlier {
                // Metrics and shared-data keys are named per filter: two instances would mix them.
                return Err(ConfigError::new(
                    format!("stages[{index}].filter"),
                    format!("{} appears twice; each filter runs at most once", stage.filter.name()),
                ));
            }
        }
        Ok(config)
    }
}

/// The module's stages from its plugin configuration (logs a line naming them).
pub fn build_stages(bytes: &[u8]) -> Result<Vec<Box<dyn Stage>>, ConfigError> {
    let config = ShieldConfig::from_json(bytes)?;
    let mut stages = Vec::with_capacity(config.stages.len());
    for (index, stage) in config.stages.iter().enumerate() {
        let bytes = if stage.config.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&stage.config)
                .map_err(|error| ConfigError::new(format!("stages[{index}].config"), error.to_string()))?
        };
        let built = (stage.filter.builder())(&bytes).map_err(|error| nested(index, &error))?;
        stages.push(built);
    }
    let names: Vec<&str> = stages.iter().map(|stage| stage.name()).collect();
    log::info!("configured stages={}", names.join(","));
    Ok(stages)
}

/// A stage's configuration error, its field placed under `stages[i].config`.
fn nested(index: usize, error: &ConfigError) -> ConfigError {
    let field = if error.field().is_empty() {
        format!("stages[{index}].config")
    } else {
        format!("stages[{index}].config.{}", error.field())
    };
    ConfigError::new(field, error.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(json: &str) -> String {
        ShieldConfig::from_json(json.as_bytes()).map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn stages_are_read_in_order_with_their_configurations() {
        let config = ShieldConfig::from_json(
            br#"{"stages":[{"filter":"header-strip","config":{"strip":["x-a"]}},{"filter":"request-id"},{"filter":"waf","config":{"mode":"detect"}}]}"#,
        )
        .unwrap();
        let filters: Vec<Filter> = config.stages.iter().map(|stage| stage.filter).collect();
        assert_eq!(filters, vec![Filter::HeaderStrip, Filter::RequestId, Filter::Waf]);
        assert!(config.stages[1].config.is_null());
        assert_eq!(config.stages[2].config["mode"], "detect");
    }

    #[test]
    fn the_stage_list_is_checked() {
        assert_eq!(error("{}"), "invalid configuration: missing field `stages`");
        assert_eq!(error(""), "invalid configuration: field `stages`: at least one stage is required");
        assert_eq!(error(r#"{"stages":[]}"#), "invalid configuration: field `stages`: at least one stage is required");
        assert!(
            error(r#"{"stages":[{"filter":"rot13"}]}"#).contains("field `stages[0].filter`: unknown variant `rot13`")
        );
        let misplaced = error(r#"{"stages":[{"filter":"waf","mode":"block"}]}"#);
        assert!(misplaced.contains("stages[0]") && misplaced.contains("unknown field `mode`"), "{misplaced}");
        assert!(error(r#"{"stage":[]}"#).contains("unknown field `stage`"));
        assert_eq!(
            error(r#"{"stages":[{"filter":"waf"},{"filter":"request-id"},{"filter":"waf"}]}"#),
            "invalid configuration: field `stages[2].filter`: waf appears twice; each filter runs at most once"
        );
    }

    #[test]
    fn nested_errors_name_the_stage_and_the_field() {
        let inner = ConfigError::new("strip[1]", "invalid header name");
        assert_eq!(
            nested(0, &inner).to_string(),
            "invalid configuration: field `stages[0].config.strip[1]`: invalid header name"
        );
        assert_eq!(nested(3, &ConfigError::new("", "expected a JSON object")).field(), "stages[3].config");
    }

    #[test]
    fn every_filter_name_round_trips() {
        for filter in [Filter::HeaderStrip, Filter::RequestId, Filter::JwtAuth, Filter::RateLimit, Filter::Waf] {
            let parsed: Filter = serde_json::from_value(serde_json::Value::from(filter.name())).unwrap();
            assert_eq!(parsed, filter);
        }
    }
}
