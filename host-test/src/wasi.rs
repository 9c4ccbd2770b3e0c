//! The WASI preview1 calls a Rust module built for `wasm32-wasip1` imports, answered from the
//! case's virtual clock and seeded generator so that a replay repeats exactly.

use anyhow::Result;
use wasmtime::{Caller, Linker, Module, Val};

use crate::abi::{LogLevel, errno};
use crate::vm::{VmState, read_bytes, write_bytes, write_u32};

const WASI: &str = "wasi_snapshot_preview1";
/// Clock ids of `clock_time_get`: realtime and monotonic, the two a module asks for.
const CLOCK_REALTIME: i32 = 0;
const CLOCK_MONOTONIC: i32 = 1;
/// The WASI functions `add_to_linker` defines.
const IMPLEMENTED: &[&str] = &[
    "fd_write",
    "clock_time_get",
    "clock_res_get",
    "random_get",
    "environ_sizes_get",
    "environ_get",
    "args_sizes_get",
    "args_get",
    "sched_yield",
    "proc_exit",
];

/// Appends written bytes to the VM's pending stdout/stderr line and logs every full line, as
/// Envoy logs a module's stdout at info and stderr at error.
fn write_stream(caller: &mut Caller<'_, VmState>, fd: i32, bytes: &[u8]) {
    let level = if fd == 1 { LogLevel::Info } else { LogLevel::Error };
    let state = caller.data_mut();
    let line = if fd == 1 { &mut state.stdout_line } else { &mut state.stderr_line };
    line.extend_from_slice(bytes);
    let mut complete = Vec::new();
    while let Some(end) = line.iter().position(|b| *b == b'\n') {
        complete.push(line.drain(..=end).take(end).collect::<Vec<u8>>());
    }
    for message in complete {
        state.log(level, &message);
    }
}

fn errno_of(result: Result<(), crate::abi::Status>) -> i32 {
    if result.is_ok() { errno::SUCCESS } else { errno::FAULT }
}

/// Adds the WASI functions this host implements, and for any other WASI import of `module`
/// a function that answers `ENOSYS`, so that a module importing more still loads.
pub fn add_to_linker(linker: &mut Linker<VmState>) -> Result<()> {
    linker.func_wrap(
        WASI,
        "fd_write",
        |mut caller: Caller<'_, VmState>, fd: i32, iovs: i32, count: i32, written_ptr: i32| -> i32 {
            if fd != 1 && fd != 2 {
                return errno::BADF;
            }
            let mut written = 0u32;
            for index in 0..count.max(0) {
                let Ok(iov) = read_bytes(&mut caller, iovs + index * 8, 8) else {
                    return errno::FAULT;
                };
                let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                let Ok(bytes) = read_bytes(&mut caller, ptr, len) else {
                    return errno::FAULT;
                };
                written += bytes.len() as u32;
                write_stream(&mut caller, fd, &bytes);
            }
            errno_of(write_u32(&mut caller, written_ptr, written))
        },
    )?;
    linker.func_wrap(
        WASI,
        "clock_time_get",
        |mut caller: Caller<'_, VmState>, clock: i32, _precision: i64, ret: i32| -> i32 {
            // Both clocks read the virtual clock, so WASI time agrees with proxy time.
            if clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC {
                return errno::INVAL;
            }
            let now = caller.data().world.borrow().now_ns;
            errno_of(write_bytes(&mut caller, ret, &now.to_le_bytes()))
        },
    )?;
    linker.func_wrap(WASI, "clock_res_get", |mut caller: Caller<'_, VmState>, _clock: i32, ret: i32| -> i32 {
        errno_of(write_bytes(&mut caller, ret, &1u64.to_le_bytes()))
    })?;
    linker.func_wrap(WASI, "random_get", |mut caller: Caller<'_, VmState>, ptr: i32, len: i32| -> i32 {
        let mut bytes = vec![0u8; len.max(0) as usize];
        caller.data_mut().random.fill(&mut bytes);
        errno_of(write_bytes(&mut caller, ptr, &bytes))
    })?;
    linker.func_wrap(
        WASI,
        "environ_sizes_get",
        |mut caller: Caller<'_, VmState>, count_ptr: i32, size_ptr: i32| -> i32 {
            let env = &caller.data().plugin.env;
            let count = env.len() as u32;
            let size: usize = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
            errno_of(
                write_u32(&mut caller, count_ptr, count).and_then(|()| write_u32(&mut caller, size_ptr, size as u32)),
            )
        },
    )?;
    linker.func_wrap(WASI, "environ_get", |mut caller: Caller<'_, VmState>, pointers: i32, buffer: i32| -> i32 {
        let entries: Vec<Vec<u8>> =
            caller.data().plugin.env.iter().map(|(k, v)| format!("{k}={v}\0").into_bytes()).collect();
        let mut cursor = buffer;
        for (index, entry) in entries.iter().enumerate() {
            let result = write_u32(&mut caller, pointers + index as i32 * 4, cursor as u32)
                .and_then(|()| write_bytes(&mut caller, cursor, entry));
            if result.is_err() {
                return errno::FAULT;
            }
            cursor += entry.len() as i32;
        }
        errno::SUCCESS
    })?;
    // Envoy passes no arguments: report none so that args_get is never needed.
    linker.func_wrap(
        WASI,
        "args_sizes_get",
        |mut caller: Caller<'_, VmState>, count_ptr: i32, size_ptr: i32| -> i32 {
            errno_of(write_u32(&mut caller, count_ptr, 0).and_then(|()| write_u32(&mut caller, size_ptr, 0)))
        },
    )?;
    linker.func_wrap(WASI, "args_get", |_caller: Caller<'_, VmState>, _argv: i32, _buffer: i32| -> i32 {
        errno::SUCCESS
    })?;
    linker.func_wrap(WASI, "sched_yield", |_caller: Caller<'_, VmState>| -> i32 { errno::SUCCESS })?;
    linker.func_wrap(WASI, "proc_exit", |_caller: Caller<'_, VmState>, code: i32| -> wasmtime::Result<()> {
        wasmtime::bail!("the module called proc_exit({code})")
    })?;
    Ok(())
}

/// Defines every WASI import of `module` this host does not implement as a function that
/// answers `ENOSYS` (or traps, when its signature has no errno to return). The linker must
/// allow shadowing, since modules share it.
pub fn stub_unimplemented(linker: &mut Linker<VmState>, module: &Module) -> Result<()> {
    for import in module.imports() {
        if import.module() != WASI || IMPLEMENTED.contains(&import.name()) {
            continue;
        }
        let Some(ty) = import.ty().func().cloned() else {
            continue;
        };
        let name = import.name().to_string();
        let returns_errno = ty.results().len() == 1 && matches!(ty.results().next(), Some(wasmtime::ValType::I32));
        linker.func_new(WASI, &name.clone(), ty, move |_caller, _params, results| {
            if returns_errno {
                results[0] = Val::I32(errno::NOSYS);
                Ok(())
            } else {
                wasmtime::bail!("WASI function {name} is not implemented by this host")
            }
        })?;
    }
    Ok(())
}
