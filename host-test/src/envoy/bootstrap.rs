//! Generates the Envoy bootstrap for a fixture case: a loopback listener that reads the PROXY
//! protocol (so the fixture's source address is Envoy's downstream address), the case's filter
//! chain as `envoy.filters.http.wasm` filters with the V8 runtime, the router, the upstream
//! cluster, and one cluster per name the case's http calls use.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::fixture::{Case, FailurePolicy};

/// Ports and module paths the bootstrap needs.
pub struct Layout<'a> {
    /// The listener.
    pub listen_port: u16,
    /// The admin interface.
    pub admin_port: u16,
    /// The backend.
    pub upstream_port: u16,
    /// Cluster name → mock server port.
    pub clusters: &'a BTreeMap<String, u16>,
    /// The module file of each filter, in chain order.
    pub modules: &'a [&'a Path],
}

fn string_value(text: String) -> Value {
    json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": text})
}

fn cluster(name: &str, port: u16) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http_protocol_options": {"enable_trailers": true}}}}
    })
}

/// The Wasm filter entry of one fixture filter.
pub fn wasm_filter(case: &Case, index: usize, module: &Path) -> Value {
    let filter = &case.filters[index];
    let configuration = match (&filter.config_raw, &filter.config) {
        (Some(raw), _) => raw.clone(),
        (None, Some(value)) => value.to_string(),
        (None, None) => String::new(),
    };
    let mut vm_config = json!({
        "vm_id": filter.vm_id.clone().unwrap_or_default(),
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"local": {"filename": module.display().to_string()}},
    });
    if let Some(value) = &filter.vm_config {
        vm_config["configuration"] = string_value(value.to_string());
    }
    if !filter.env.is_empty() {
        vm_config["environment_variables"] = json!({"key_values": filter.env});
    }
    let failure_policy = match filter.failure_policy {
        FailurePolicy::FailClosed => "FAIL_CLOSED",
        FailurePolicy::FailOpen => "FAIL_OPEN",
    };
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": filter.plugin_name.clone().unwrap_or_else(|| filter.name.clone()),
                "root_id": filter.root_id.clone().unwrap_or_default(),
                "configuration": string_value(configuration),
                "failure_policy": failure_policy,
                "vm_config": vm_config,
            }
        }
    })
}

/// The whole bootstrap, as JSON (which Envoy reads as YAML).
pub fn bootstrap(case: &Case, layout: &Layout<'_>) -> Value {
    let mut http_filters: Vec<Value> =
        layout.modules.iter().enumerate().map(|(index, module)| wasm_filter(case, index, module)).collect();
    http_filters.push(json!({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}));
    let mut clusters = vec![cluster("upstream", layout.upstream_port)];
    clusters.extend(layout.clusters.iter().map(|(name, port)| cluster(name, *port)));
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": layout.admin_port}}},
        "static_resources": {
            "listeners": [{
                "name": "fixture",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": layout.listen_port}},
                "listener_filters": [{"name": "envoy.filters.listener.proxy_protocol", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol"}}],
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "fixture",
                        // The harness adds no x-request-id: neither does Envoy here, so that
                        // request-ID behaviour is the filters' alone.
                        "generate_request_id": false,
                        // Let the upstream's `server` header through the filters (one of them
                        // may strip it) instead of overwriting it after them.
                        "server_header_transformation": "PASS_THROUGH",
                        "http_protocol_options": {"enable_trailers": true},
                        "route_config": {"name": "fixture", "virtual_hosts": [{
                            "name": "all", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": "15s"}}]}]},
                        "http_filters": http_filters,
                    }
                }]}]
            }],
            "clusters": clusters,
        }
    })
}
