//! `proxy_get_property` with Envoy's attribute paths: strings as bytes, integers as 8-byte
//! little-endian, maps in the pairs serialization, and anything a filter set on the stream.

use crate::abi::{Status, encode_pairs, split_property_path};
use crate::stream::{HeaderMap, Stream};

/// The plugin-level values a property lookup may need.
pub struct PluginView<'a> {
    /// `plugin_name`.
    pub name: &'a str,
    /// `plugin_root_id`.
    pub root_id: &'a str,
    /// `plugin_vm_id`.
    pub vm_id: &'a str,
}

fn int(value: i64) -> Vec<u8> {
    value.to_le_bytes().to_vec()
}

fn header_map(map: &HeaderMap) -> Vec<u8> {
    map.encode()
}

/// Looks up `path` (NUL-separated segments). `stream` is the stream of the effective context.
pub fn get_property(
    path: &[u8],
    stream: Option<&Stream>,
    plugin: &PluginView<'_>,
    now_ns: u64,
) -> Result<Vec<u8>, Status> {
    let segments = split_property_path(path);
    let Some((first, rest)) = segments.split_first() else {
        return Err(Status::NotFound);
    };
    let text = |s: &str| Ok(s.as_bytes().to_vec());
    match (*first, rest) {
        (b"plugin_name", []) => return text(plugin.name),
        (b"plugin_root_id", []) => return text(plugin.root_id),
        (b"plugin_vm_id", []) => return text(plugin.vm_id),
        _ => {}
    }
    let stream = stream.ok_or(Status::NotFound)?;
    let connection = &stream.connection;
    let request = &stream.request_headers;
    let header_text = |map: &HeaderMap, name: &[u8]| map.get(name).map(<[u8]>::to_vec).ok_or(Status::NotFound);
    match (*first, rest) {
        (b"source", [b"address"]) => text(&connection.source.to_string()),
        (b"source", [b"port"]) => Ok(int(connection.source.port().into())),
        (b"destination", [b"address"]) => text(&connection.destination.to_string()),
        (b"destination", [b"port"]) => Ok(int(connection.destination.port().into())),
        (b"connection", [b"id"]) | (b"connection_id", []) => Ok(connection.id.to_le_bytes().to_vec()),
        (b"connection", [b"mtls"]) => Ok(vec![0]),
        (b"request", [b"path"]) => header_text(request, b":path"),
        (b"request", [b"url_path"]) => {
            let path = request.get(b":path").ok_or(Status::NotFound)?;
            let end = path.iter().position(|b| *b == b'?').unwrap_or(path.len());
            Ok(path[..end].to_vec())
        }
        (b"request", [b"query"]) => {
            let path = request.get(b":path").ok_or(Status::NotFound)?;
            Ok(path.iter().position(|b| *b == b'?').map(|at| path[at + 1..].to_vec()).unwrap_or_default())
        }
        (b"request", [b"host"]) => header_text(request, b":authority"),
        (b"request", [b"scheme"]) => header_text(request, b":scheme"),
        (b"request", [b"method"]) => header_text(request, b":method"),
        (b"request", [b"referer"]) => header_text(request, b"referer"),
        (b"request", [b"useragent"]) => header_text(request, b"user-agent"),
        (b"request", [b"id"]) => header_text(request, b"x-request-id"),
        (b"request", [b"protocol"]) => text(&connection.protocol),
        (b"request", [b"time"]) => Ok(int(stream.start_ns as i64)),
        (b"request", [b"size"]) => Ok(int(stream.request_body_size as i64)),
        (b"request", [b"total_size"]) => Ok(int((stream.request_body_size as usize
            + request.byte_size()
            + stream.request_trailers.byte_size()) as i64)),
        (b"request", [b"headers"]) => Ok(header_map(request)),
        (b"request", [b"headers", name]) => header_text(request, name),
        (b"response", [b"code"]) => stream.response_code().map(int).ok_or(Status::NotFound),
        (b"response", [b"size"]) => Ok(int(stream.response_body_size as i64)),
        (b"response", [b"headers"]) => Ok(header_map(&stream.response_headers)),
        (b"response", [b"headers", name]) => header_text(&stream.response_headers, name),
        (b"response", [b"trailers"]) => Ok(header_map(&stream.response_trailers)),
        (b"response", [b"trailers", name]) => header_text(&stream.response_trailers, name),
        (b"request", [b"duration"]) => Ok(int(now_ns.saturating_sub(stream.start_ns) as i64)),
        // Envoy keeps what a filter set under filter state `wasm.<path>`.
        (b"filter_state", [key]) => {
            key.strip_prefix(b"wasm.").and_then(|path| stream.properties.get(path)).cloned().ok_or(Status::NotFound)
        }
        (b"filter_state", []) => Ok(encode_pairs(
            stream.properties.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect::<Vec<_>>().iter().copied(),
        )),
        // What a filter set is found by a one-segment path only: Envoy reads the first segment as
        // the filter-state key and the rest as fields inside it.
        (_, []) => stream.properties.get(path).cloned().ok_or(Status::NotFound),
        _ => Err(Status::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::Connection;

    fn stream() -> Stream {
        let headers = HeaderMap::from_pairs([
            (b":path".to_vec(), b"/a/b?x=1".to_vec()),
            (b":method".to_vec(), b"POST".to_vec()),
            (b"x-request-id".to_vec(), b"abc".to_vec()),
        ]);
        let connection = Connection {
            source: "[2001:db8::1]:443".parse().expect("valid address"),
            destination: "127.0.0.1:10000".parse().expect("valid address"),
            id: 7,
            protocol: "HTTP/1.1".into(),
        };
        Stream::new(headers, connection, 5)
    }

    const PLUGIN: PluginView<'static> = PluginView { name: "p", root_id: "r", vm_id: "v" };

    #[test]
    fn envoy_attribute_paths() {
        let s = stream();
        let get = |path: &str| get_property(path.replace('.', "\0").as_bytes(), Some(&s), &PLUGIN, 5);
        assert_eq!(get("source.address"), Ok(b"[2001:db8::1]:443".to_vec()));
        assert_eq!(get("source.port"), Ok(443i64.to_le_bytes().to_vec()));
        assert_eq!(get("request.url_path"), Ok(b"/a/b".to_vec()));
        assert_eq!(get("request.query"), Ok(b"x=1".to_vec()));
        assert_eq!(get("request.id"), Ok(b"abc".to_vec()));
        assert_eq!(get("plugin_name"), Ok(b"p".to_vec()));
        assert_eq!(get("response.code"), Err(Status::NotFound));
        assert_eq!(get("nothing.here"), Err(Status::NotFound));
        let headers = get("request.headers").expect("map");
        assert_eq!(crate::abi::decode_pairs(&headers).map(|p| p.len()), Some(3));
    }

    #[test]
    fn set_properties_are_read_back_and_through_filter_state() {
        let mut s = stream();
        s.properties.insert(b"wasm_shield.request_id".to_vec(), b"id-1".to_vec());
        assert_eq!(get_property(b"wasm_shield.request_id", Some(&s), &PLUGIN, 5), Ok(b"id-1".to_vec()));
        assert_eq!(
            get_property(b"filter_state\0wasm.wasm_shield.request_id", Some(&s), &PLUGIN, 5),
            Ok(b"id-1".to_vec())
        );
        s.properties.insert(b"probe\0stage".to_vec(), b"x".to_vec());
        assert_eq!(get_property(b"probe\0stage", Some(&s), &PLUGIN, 5), Err(Status::NotFound), "as in Envoy");
        assert_eq!(get_property(b"request\0duration", Some(&s), &PLUGIN, 9), Ok(4i64.to_le_bytes().to_vec()));
    }
}
