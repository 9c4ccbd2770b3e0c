//! The `env` host functions of Proxy-Wasm ABI v0.2.1 (and the v0.2.0 names), implemented for
//! real against the VM's state, the stream of its effective context, and the shared world.

use std::cell::RefCell;
use std::rc::Rc;

use anyhow::Result;
use wasmtime::{Caller, Linker};

use crate::abi::{LogLevel, Status, buffer, decode_pairs, encode_pairs, map, stream as stream_type};
use crate::properties::{PluginView, get_property};
use crate::stream::{HeaderMap, Stream};
use crate::vm::{
    Effect, GrpcCallRequest, HttpCallRequest, LocalReply, VmState, read_bytes, return_bytes, write_bytes, write_u32,
};

type Call<'a> = Caller<'a, VmState>;

/// Turns a host-function outcome into the status word the module receives.
fn word(result: Result<(), Status>) -> i32 {
    match result {
        Ok(()) => Status::Ok as i32,
        Err(status) => status as i32,
    }
}

/// Returns bytes to the module; a trap in its allocator propagates as a trap.
fn give(caller: &mut Call<'_>, bytes: Result<Vec<u8>, Status>, ptr_ptr: i32, size_ptr: i32) -> wasmtime::Result<i32> {
    match bytes {
        Ok(bytes) => Ok(word(return_bytes(caller, &bytes, ptr_ptr, size_ptr)?)),
        Err(status) => Ok(status as i32),
    }
}

fn active_stream(caller: &Call<'_>) -> Option<Rc<RefCell<Stream>>> {
    caller.data().active_stream().cloned()
}

/// Runs `f` on the header map `map_type` of the effective stream, if the proxy has that map.
fn with_map<T>(caller: &Call<'_>, map_type: i32, f: impl FnOnce(&mut HeaderMap) -> T) -> Result<T, Status> {
    let stream = active_stream(caller).ok_or(Status::BadArgument)?;
    let mut stream = stream.borrow_mut();
    let started = stream.response_started;
    if map_type == map::HTTP_REQUEST_TRAILERS && stream.logging {
        return Err(Status::NotFound);
    }
    let target = match map_type {
        map::HTTP_REQUEST_HEADERS => &mut stream.request_headers,
        map::HTTP_REQUEST_TRAILERS => &mut stream.request_trailers,
        map::HTTP_RESPONSE_HEADERS if started => &mut stream.response_headers,
        map::HTTP_RESPONSE_TRAILERS if started => &mut stream.response_trailers,
        _ => return Err(Status::BadArgument),
    };
    Ok(f(target))
}

/// The serialized map `map_type`, including the read-only ones (call responses, gRPC metadata).
fn map_pairs(caller: &Call<'_>, map_type: i32) -> Result<Vec<u8>, Status> {
    let state = caller.data();
    let delivery = state.delivery.as_ref();
    let encode = |pairs: &crate::abi::Pairs| encode_pairs(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
    match map_type {
        map::HTTP_CALL_RESPONSE_HEADERS | map::GRPC_RECEIVE_INITIAL_METADATA => {
            Ok(delivery.map(|d| encode(&d.headers)).unwrap_or_default())
        }
        map::HTTP_CALL_RESPONSE_TRAILERS | map::GRPC_RECEIVE_TRAILING_METADATA => {
            Ok(delivery.map(|d| encode(&d.trailers)).unwrap_or_default())
        }
        _ => Ok(with_map(caller, map_type, |m| m.encode()).unwrap_or_default()),
    }
}

fn map_value(caller: &Call<'_>, map_type: i32, key: &[u8]) -> Result<Vec<u8>, Status> {
    let state = caller.data();
    let from_pairs = |pairs: &crate::abi::Pairs| {
        pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone()).ok_or(Status::NotFound)
    };
    match (map_type, state.delivery.as_ref()) {
        (map::HTTP_CALL_RESPONSE_HEADERS | map::GRPC_RECEIVE_INITIAL_METADATA, Some(d)) => from_pairs(&d.headers),
        (map::HTTP_CALL_RESPONSE_TRAILERS | map::GRPC_RECEIVE_TRAILING_METADATA, Some(d)) => from_pairs(&d.trailers),
        (map::HTTP_CALL_RESPONSE_HEADERS..=map::HTTP_CALL_RESPONSE_TRAILERS, None)
        | (map::GRPC_RECEIVE_INITIAL_METADATA..=map::GRPC_RECEIVE_TRAILING_METADATA, None) => Err(Status::BadArgument),
        _ => with_map(caller, map_type, |m| m.get(key).map(<[u8]>::to_vec))?.ok_or(Status::NotFound),
    }
}

fn buffer_bytes(caller: &Call<'_>, buffer_type: i32) -> Result<Vec<u8>, Status> {
    let state = caller.data();
    match buffer_type {
        buffer::HTTP_REQUEST_BODY => Ok(active_stream(caller).ok_or(Status::NotFound)?.borrow().request_body.clone()),
        buffer::HTTP_RESPONSE_BODY => Ok(active_stream(caller).ok_or(Status::NotFound)?.borrow().response_body.clone()),
        buffer::HTTP_CALL_RESPONSE_BODY | buffer::GRPC_RECEIVE_BUFFER => {
            state.delivery.as_ref().map(|d| d.body.clone()).ok_or(Status::NotFound)
        }
        buffer::VM_CONFIGURATION => Ok(state.plugin.vm_configuration.clone()),
        buffer::PLUGIN_CONFIGURATION if state.configuring => Ok(state.plugin.configuration.clone()),
        buffer::PLUGIN_CONFIGURATION
        | buffer::DOWNSTREAM_DATA
        | buffer::UPSTREAM_DATA
        | buffer::FOREIGN_FUNCTION_ARGUMENTS => Err(Status::NotFound),
        _ => Err(Status::BadArgument),
    }
}

/// Envoy's rules for changing a body buffer: prepend (start 0, size 0), replace all (start 0,
/// size ≥ length), append (start ≥ length); anything else is a bad argument.
fn splice_body(body: &mut Vec<u8>, start: usize, size: usize, data: &[u8]) -> Result<(), Status> {
    if start == 0 && size == 0 {
        body.splice(0..0, data.iter().copied());
    } else if start == 0 && size >= body.len() {
        *body = data.to_vec();
    } else if start >= body.len() {
        body.extend_from_slice(data);
    } else {
        return Err(Status::BadArgument);
    }
    Ok(())
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

fn read_pairs(caller: &mut Call<'_>, ptr: i32, len: i32) -> Result<crate::abi::Pairs, Status> {
    decode_pairs(&read_bytes(caller, ptr, len)?).ok_or(Status::ParseFailure)
}

/// Opens a gRPC call (`stream` false: odd token, as Envoy hands them out) or stream (even
/// token): `target` is the (pointer, length) of the cluster, service, method and initial metadata.
fn open_grpc(
    caller: &mut Call<'_>,
    target: [(i32, i32); 4],
    messages: Vec<Vec<u8>>,
    timeout_ms: u32,
    stream: bool,
    token_ptr: i32,
) -> Result<(), Status> {
    let [cluster, service, method, metadata] = target;
    read_pairs(caller, metadata.0, metadata.1)?;
    let cluster = text(read_bytes(caller, cluster.0, cluster.1)?);
    let service = text(read_bytes(caller, service.0, service.1)?);
    let method = text(read_bytes(caller, method.0, method.1)?);
    let state = caller.data_mut();
    let mut token = state.next_grpc_token;
    if token.is_multiple_of(2) != stream {
        token += 1;
    }
    state.next_grpc_token = token + 1;
    write_u32(caller, token_ptr, token)?;
    let context = caller.data().active_context;
    let state = caller.data_mut();
    state.open_grpc.insert(token);
    state.effects.push(Effect::GrpcCall(GrpcCallRequest {
        token,
        context,
        cluster,
        service,
        method,
        messages,
        timeout_ms,
    }));
    Ok(())
}

macro_rules! host {
    ($linker:ident, $name:literal, |$caller:ident $(, $arg:ident : $ty:ty)*| $body:block) => {
        $linker.func_wrap("env", $name, move |mut $caller: Call<'_> $(, $arg: $ty)*| -> wasmtime::Result<i32> {
            #[allow(unused_mut)]
            let mut $caller = &mut $caller;
            $body
        })?;
    };
}

/// Adds every `env` host function to `linker`.
pub fn add_to_linker(linker: &mut Linker<VmState>) -> Result<()> {
    // Logging, time and timers.
    host!(linker, "proxy_log", |caller, level: i32, ptr: i32, len: i32| {
        Ok(word(read_bytes(caller, ptr, len).map(|message| caller.data().log(LogLevel::from_abi(level), &message))))
    });
    host!(linker, "proxy_get_log_level", |caller, ret: i32| {
        let level = caller.data().plugin.log_level as u32;
        Ok(word(write_u32(caller, ret, level)))
    });
    host!(linker, "proxy_get_current_time_nanoseconds", |caller, ret: i32| {
        let now = caller.data().world.borrow().now_ns;
        Ok(word(write_bytes(caller, ret, &now.to_le_bytes())))
    });
    host!(linker, "proxy_set_tick_period_milliseconds", |caller, period: i32| {
        let state = caller.data_mut();
        let now = state.world.borrow().now_ns;
        state.tick_period_ms = period as u32;
        state.next_tick_ns = (period != 0).then(|| now + u64::from(period as u32) * 1_000_000);
        Ok(Status::Ok as i32)
    });

    // Buffers.
    host!(linker, "proxy_get_buffer_bytes", |caller, kind: i32, start: i32, max: i32, ptr_ptr: i32, size_ptr: i32| {
        let bytes = buffer_bytes(caller, kind).and_then(|all| {
            let (start, max) = (start as u32 as usize, max as u32 as usize);
            if start > all.len() {
                return Err(Status::BadArgument);
            }
            let end = start.saturating_add(max).min(all.len());
            Ok(all[start..end].to_vec())
        });
        give(caller, bytes, ptr_ptr, size_ptr)
    });
    host!(linker, "proxy_get_buffer_status", |caller, kind: i32, size_ptr: i32, flags_ptr: i32| {
        let result = buffer_bytes(caller, kind).and_then(|all| {
            write_u32(caller, size_ptr, all.len() as u32)?;
            write_u32(caller, flags_ptr, 0)
        });
        Ok(word(result))
    });
    host!(linker, "proxy_set_buffer_bytes", |caller, kind: i32, start: i32, size: i32, ptr: i32, len: i32| {
        let result = read_bytes(caller, ptr, len).and_then(|data| {
            let stream = active_stream(caller).ok_or(Status::NotFound)?;
            let mut stream = stream.borrow_mut();
            let body = match kind {
                buffer::HTTP_REQUEST_BODY => &mut stream.request_body,
                buffer::HTTP_RESPONSE_BODY => &mut stream.response_body,
                _ => return Err(Status::BadArgument),
            };
            splice_body(body, start as u32 as usize, size as u32 as usize, &data)
        });
        Ok(word(result))
    });

    // Header and trailer maps.
    host!(linker, "proxy_get_header_map_pairs", |caller, kind: i32, ptr_ptr: i32, size_ptr: i32| {
        let pairs = map_pairs(caller, kind);
        give(caller, pairs, ptr_ptr, size_ptr)
    });
    host!(linker, "proxy_set_header_map_pairs", |caller, kind: i32, ptr: i32, len: i32| {
        let result = read_pairs(caller, ptr, len)
            .and_then(|pairs| with_map(caller, kind, |m| *m = HeaderMap::from_pairs(pairs)));
        Ok(word(result))
    });
    host!(linker, "proxy_get_header_map_value", |caller,
                                                 kind: i32,
                                                 key_ptr: i32,
                                                 key_len: i32,
                                                 ptr_ptr: i32,
                                                 size_ptr: i32| {
        let value = read_bytes(caller, key_ptr, key_len).and_then(|key| map_value(caller, kind, &key));
        give(caller, value, ptr_ptr, size_ptr)
    });
    host!(linker, "proxy_replace_header_map_value", |caller,
                                                     kind: i32,
                                                     key_ptr: i32,
                                                     key_len: i32,
                                                     ptr: i32,
                                                     len: i32| {
        let result = read_bytes(caller, key_ptr, key_len)
            .and_then(|key| Ok((key, read_bytes(caller, ptr, len)?)))
            .and_then(|(key, value)| with_map(caller, kind, |m| m.replace(&key, &value)));
        Ok(word(result))
    });
    host!(linker, "proxy_add_header_map_value", |caller, kind: i32, key_ptr: i32, key_len: i32, ptr: i32, len: i32| {
        let result = read_bytes(caller, key_ptr, key_len)
            .and_then(|key| Ok((key, read_bytes(caller, ptr, len)?)))
            .and_then(|(key, value)| with_map(caller, kind, |m| m.add(&key, &value)));
        Ok(word(result))
    });
    host!(linker, "proxy_remove_header_map_value", |caller, kind: i32, key_ptr: i32, key_len: i32| {
        let result = read_bytes(caller, key_ptr, key_len).and_then(|key| with_map(caller, kind, |m| m.remove(&key)));
        Ok(word(result))
    });
    host!(linker, "proxy_get_header_map_size", |caller, kind: i32, ret: i32| {
        let result = with_map(caller, kind, |m| m.byte_size() as u32).and_then(|size| write_u32(caller, ret, size));
        Ok(word(result))
    });

    // Properties.
    host!(linker, "proxy_get_property", |caller, path_ptr: i32, path_len: i32, ptr_ptr: i32, size_ptr: i32| {
        let value = read_bytes(caller, path_ptr, path_len).and_then(|path| {
            let state = caller.data();
            let plugin =
                PluginView { name: &state.plugin.name, root_id: &state.plugin.root_id, vm_id: &state.plugin.vm_id };
            let stream = state.active_stream().map(|s| s.borrow());
            let now = state.world.borrow().now_ns;
            get_property(&path, stream.as_deref(), &plugin, now)
        });
        give(caller, value, ptr_ptr, size_ptr)
    });
    host!(linker, "proxy_set_property", |caller, path_ptr: i32, path_len: i32, ptr: i32, len: i32| {
        let result = read_bytes(caller, path_ptr, path_len).and_then(|path| {
            let value = read_bytes(caller, ptr, len)?;
            let stream = active_stream(caller).ok_or(Status::NotFound)?;
            stream.borrow_mut().properties.insert(path, value);
            Ok(())
        });
        Ok(word(result))
    });

    // Shared data and queues: scoped by vm_id, shared by every worker.
    host!(linker, "proxy_get_shared_data", |caller,
                                            key_ptr: i32,
                                            key_len: i32,
                                            ptr_ptr: i32,
                                            size_ptr: i32,
                                            cas_ptr: i32| {
        let key = match read_bytes(caller, key_ptr, key_len) {
            Ok(key) => key,
            Err(status) => return Ok(status as i32),
        };
        let found = caller.data().world.borrow().get_shared(&caller.data().plugin.vm_id, &key);
        let Some((value, cas)) = found else {
            return Ok(Status::NotFound as i32);
        };
        if let Err(status) = write_u32(caller, cas_ptr, cas) {
            return Ok(status as i32);
        }
        give(caller, Ok(value), ptr_ptr, size_ptr)
    });
    host!(linker, "proxy_set_shared_data", |caller, key_ptr: i32, key_len: i32, ptr: i32, len: i32, cas: i32| {
        let result = read_bytes(caller, key_ptr, key_len).and_then(|key| {
            let value = read_bytes(caller, ptr, len)?;
            let state = caller.data();
            match state.world.borrow_mut().set_shared(&state.plugin.vm_id, &key, &value, cas as u32) {
                Status::Ok => Ok(()),
                status => Err(status),
            }
        });
        Ok(word(result))
    });
    host!(linker, "proxy_register_shared_queue", |caller, name_ptr: i32, name_len: i32, ret: i32| {
        let result = read_bytes(caller, name_ptr, name_len).and_then(|name| {
            let state = caller.data();
            let id = state.world.borrow_mut().register_queue(&state.plugin.vm_id, &text(name), state.vm);
            write_u32(caller, ret, id)
        });
        Ok(word(result))
    });
    host!(linker, "proxy_resolve_shared_queue", |caller,
                                                 vm_ptr: i32,
                                                 vm_len: i32,
                                                 name_ptr: i32,
                                                 name_len: i32,
                                                 ret: i32| {
        let result = read_bytes(caller, vm_ptr, vm_len).and_then(|vm_id| {
            let name = read_bytes(caller, name_ptr, name_len)?;
            let id = caller.data().world.borrow().resolve_queue(&text(vm_id), &text(name)).ok_or(Status::NotFound)?;
            write_u32(caller, ret, id)
        });
        Ok(word(result))
    });
    host!(linker, "proxy_enqueue_shared_queue", |caller, id: i32, ptr: i32, len: i32| {
        let result = read_bytes(caller, ptr, len).and_then(|value| {
            match caller.data().world.borrow_mut().enqueue(id as u32, &value) {
                Status::Ok => Ok(()),
                status => Err(status),
            }
        });
        Ok(word(result))
    });
    host!(linker, "proxy_dequeue_shared_queue", |caller, id: i32, ptr_ptr: i32, size_ptr: i32| {
        let value = caller.data().world.borrow_mut().dequeue(id as u32);
        give(caller, value, ptr_ptr, size_ptr)
    });

    // Stream control.
    host!(linker, "proxy_continue_stream", |caller, kind: i32| {
        let context = caller.data().active_context;
        let response = match kind {
            stream_type::HTTP_REQUEST => false,
            stream_type::HTTP_RESPONSE => true,
            _ => return Ok(Status::BadArgument as i32),
        };
        caller.data_mut().effects.push(Effect::Continue { context, response });
        Ok(Status::Ok as i32)
    });
    host!(linker, "proxy_continue_request", |caller| {
        let context = caller.data().active_context;
        caller.data_mut().effects.push(Effect::Continue { context, response: false });
        Ok(Status::Ok as i32)
    });
    host!(linker, "proxy_continue_response", |caller| {
        let context = caller.data().active_context;
        caller.data_mut().effects.push(Effect::Continue { context, response: true });
        Ok(Status::Ok as i32)
    });
    host!(linker, "proxy_close_stream", |caller, _kind: i32| {
        let context = caller.data().active_context;
        caller.data_mut().effects.push(Effect::Close { context });
        Ok(Status::Ok as i32)
    });
    host!(linker, "proxy_clear_route_cache", |caller| {
        let _ = &caller;
        Ok(Status::Ok as i32)
    });
    host!(linker, "proxy_send_local_response", |caller,
                                                status: i32,
                                                details_ptr: i32,
                                                details_len: i32,
                                                body_ptr: i32,
                                                body_len: i32,
                                                headers_ptr: i32,
                                                headers_len: i32,
                                                _grpc_status: i32| {
        let reply = (|| -> Result<LocalReply, Status> {
            Ok(LocalReply {
                status: status as u32,
                details: text(read_bytes(caller, details_ptr, details_len)?),
                body: read_bytes(caller, body_ptr, body_len)?,
                headers: read_pairs(caller, headers_ptr, headers_len)?,
            })
        })();
        let result = reply.map(|reply| {
            let context = caller.data().active_context;
            caller.data_mut().effects.push(Effect::LocalReply { context, reply });
        });
        Ok(word(result))
    });

    // HTTP and gRPC calls.
    host!(linker, "proxy_http_call", |caller,
                                      cluster_ptr: i32,
                                      cluster_len: i32,
                                      headers_ptr: i32,
                                      headers_len: i32,
                                      body_ptr: i32,
                                      body_len: i32,
                                      trailers_ptr: i32,
                                      trailers_len: i32,
                                      timeout: i32,
                                      token_ptr: i32| {
        let request = (|| -> Result<HttpCallRequest, Status> {
            let headers = read_pairs(caller, headers_ptr, headers_len)?;
            // Envoy refuses a call without the three request pseudo-headers.
            for required in [&b":path"[..], b":method", b":authority"] {
                if !headers.iter().any(|(k, _)| k.as_slice() == required) {
                    return Err(Status::BadArgument);
                }
            }
            let cluster = text(read_bytes(caller, cluster_ptr, cluster_len)?);
            // Envoy refuses a call to a cluster it does not have.
            if !caller.data().world.borrow().clusters.contains(&cluster) {
                return Err(Status::BadArgument);
            }
            let state = caller.data();
            Ok(HttpCallRequest {
                token: state.next_http_token,
                context: state.active_context,
                cluster,
                headers,
                body: read_bytes(caller, body_ptr, body_len)?,
                trailers: read_pairs(caller, trailers_ptr, trailers_len)?,
                timeout_ms: timeout as u32,
            })
        })();
        let result = request.and_then(|request| {
            write_u32(caller, token_ptr, request.token)?;
            let state = caller.data_mut();
            state.next_http_token = state.next_http_token.wrapping_add(1).max(1);
            state.effects.push(Effect::HttpCall(request));
            Ok(())
        });
        Ok(word(result))
    });
    host!(linker, "proxy_grpc_call", |caller,
                                      svc_ptr: i32,
                                      svc_len: i32,
                                      name_ptr: i32,
                                      name_len: i32,
                                      method_ptr: i32,
                                      method_len: i32,
                                      meta_ptr: i32,
                                      meta_len: i32,
                                      msg_ptr: i32,
                                      msg_len: i32,
                                      timeout: i32,
                                      token_ptr: i32| {
        let target = [(svc_ptr, svc_len), (name_ptr, name_len), (method_ptr, method_len), (meta_ptr, meta_len)];
        let message = read_bytes(caller, msg_ptr, msg_len);
        let result =
            message.and_then(|message| open_grpc(caller, target, vec![message], timeout as u32, false, token_ptr));
        Ok(word(result))
    });
    host!(linker, "proxy_grpc_stream", |caller,
                                        svc_ptr: i32,
                                        svc_len: i32,
                                        name_ptr: i32,
                                        name_len: i32,
                                        method_ptr: i32,
                                        method_len: i32,
                                        meta_ptr: i32,
                                        meta_len: i32,
                                        token_ptr: i32| {
        let target = [(svc_ptr, svc_len), (name_ptr, name_len), (method_ptr, method_len), (meta_ptr, meta_len)];
        Ok(word(open_grpc(caller, target, Vec::new(), 0, true, token_ptr)))
    });
    host!(linker, "proxy_grpc_send", |caller, token: i32, ptr: i32, len: i32, end_stream: i32| {
        let token = token as u32;
        if !caller.data().open_grpc.contains(&token) {
            return Ok(Status::NotFound as i32);
        }
        if token % 2 == 1 {
            return Ok(Status::BadArgument as i32); // A unary call takes no further messages.
        }
        let result = read_bytes(caller, ptr, len).map(|message| {
            let context = caller.data().active_context;
            let end_stream = end_stream != 0;
            caller.data_mut().effects.push(Effect::GrpcSend { token, context, message, end_stream });
        });
        Ok(word(result))
    });
    host!(linker, "proxy_grpc_cancel", |caller, token: i32| {
        let token = token as u32;
        if !caller.data_mut().open_grpc.remove(&token) {
            return Ok(Status::NotFound as i32);
        }
        caller.data_mut().effects.push(Effect::GrpcCancel { token });
        Ok(Status::Ok as i32)
    });
    host!(linker, "proxy_grpc_close", |caller, token: i32| {
        let token = token as u32;
        if !caller.data_mut().open_grpc.remove(&token) {
            return Ok(Status::NotFound as i32);
        }
        caller.data_mut().effects.push(Effect::GrpcCancel { token });
        Ok(Status::Ok as i32)
    });
    host!(linker, "proxy_get_status", |caller, code_ptr: i32, ptr_ptr: i32, size_ptr: i32| {
        let (code, message) = caller.data().last_status.clone();
        if let Err(status) = write_u32(caller, code_ptr, code) {
            return Ok(status as i32);
        }
        give(caller, Ok(message), ptr_ptr, size_ptr)
    });

    // Contexts.
    host!(linker, "proxy_set_effective_context", |caller, context: i32| {
        let state = caller.data_mut();
        let context = context as u32;
        if context == crate::vm::ROOT_CONTEXT_ID || state.streams.contains_key(&context) {
            state.active_context = context;
            Ok(Status::Ok as i32)
        } else {
            Ok(Status::BadArgument as i32)
        }
    });
    host!(linker, "proxy_done", |caller| {
        // Envoy deletes an HTTP context right after `proxy_on_done` whatever it answered, so no
        // context is ever waiting for `proxy_done`.
        let _ = &caller;
        Ok(Status::NotFound as i32)
    });
    host!(linker, "proxy_call_foreign_function", |caller,
                                                  name_ptr: i32,
                                                  name_len: i32,
                                                  args_ptr: i32,
                                                  args_len: i32,
                                                  _ret_ptr: i32,
                                                  _ret_size: i32| {
        // No foreign functions are registered in this host: every name is unknown.
        let result = read_bytes(caller, name_ptr, name_len).and_then(|_| read_bytes(caller, args_ptr, args_len));
        Ok(word(result.and(Err(Status::NotFound))))
    });

    // Metrics: one store for every VM, by name.
    host!(linker, "proxy_define_metric", |caller, kind: i32, name_ptr: i32, name_len: i32, ret: i32| {
        let result = read_bytes(caller, name_ptr, name_len).and_then(|name| {
            let id = caller.data().world.borrow_mut().metrics.define(kind, &text(name))?;
            write_u32(caller, ret, id)
        });
        Ok(word(result))
    });
    host!(linker, "proxy_increment_metric", |caller, id: i32, offset: i64| {
        Ok(caller.data().world.borrow_mut().metrics.increment(id as u32, offset) as i32)
    });
    host!(linker, "proxy_record_metric", |caller, id: i32, value: i64| {
        Ok(caller.data().world.borrow_mut().metrics.record(id as u32, value as u64) as i32)
    });
    host!(linker, "proxy_get_metric", |caller, id: i32, ret: i32| {
        let value = caller.data().world.borrow().metrics.get(id as u32);
        Ok(word(value.and_then(|value| write_bytes(caller, ret, &value.to_le_bytes()))))
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_splicing_follows_envoy() {
        let mut body = b"world".to_vec();
        splice_body(&mut body, 0, 0, b"hello ").expect("prepend");
        assert_eq!(body, b"hello world");
        splice_body(&mut body, usize::MAX, 0, b"!").expect("append");
        assert_eq!(body, b"hello world!");
        let len = body.len();
        splice_body(&mut body, 0, len, b"new").expect("replace");
        assert_eq!(body, b"new");
        assert_eq!(splice_body(&mut body, 1, 1, b"x"), Err(Status::BadArgument));
    }
}
