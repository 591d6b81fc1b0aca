//! hello.rs: a guest in Rust with std, on wasm32-wasi, using the lunatic ABI directly.
//!
//!   rustc --edition 2021 --target wasm32-wasi -O hello.rs -o hello.wasm
//!   lunatic-mp run --workers 2 hello.wasm -- 10 20 30
//!
//! The root process spawns one child per argument; each child sums the squares of 1..=n and
//! sends (n, sum) back; the root prints the answers in argument order.

use std::env;

#[link(wasm_import_module = "lunatic::process")]
extern "C" {
    fn spawn(link: i64, config_id: i64, module_id: i64, fn_ptr: *const u8, fn_len: u32,
             params_ptr: *const u8, params_len: u32, id_ptr: *mut u64) -> u32;
    fn process_id() -> u64;
}

#[link(wasm_import_module = "lunatic::message")]
extern "C" {
    fn create_data(tag: i64, capacity: u64);
    fn write_data(ptr: *const u8, len: u32) -> u32;
    fn read_data(ptr: *mut u8, len: u32) -> u32;
    fn get_tag() -> i64;
    fn send(pid: u64) -> u32;
    fn receive(tags_ptr: *const i64, tags_count: u32, timeout_ms: u64) -> u32;
}

/// Send `data` to `pid` with `tag`.
fn send_bytes(pid: u64, tag: i64, data: &[u8]) {
    unsafe {
        create_data(tag, data.len() as u64);
        write_data(data.as_ptr(), data.len() as u32);
        send(pid);
    }
}

/// A spawn parameter record: the i64 type byte and a 16-byte little-endian value.
fn param_i64(value: i64) -> [u8; 17] {
    let mut record = [0u8; 17];
    record[0] = 0x7E;
    record[1..9].copy_from_slice(&value.to_le_bytes());
    record
}

/// A child process: spawned by name with (parent, n, tag) parameters.
#[no_mangle]
pub extern "C" fn sum_squares(parent: u64, n: i64, tag: i64) {
    let sum: i64 = (1..=n).map(|i| i * i).sum();
    let mut answer = Vec::with_capacity(16);
    answer.extend_from_slice(&n.to_le_bytes());
    answer.extend_from_slice(&sum.to_le_bytes());
    send_bytes(parent, tag, &answer);
}

fn main() {
    let numbers: Vec<i64> = env::args().skip(1).map(|a| a.parse().expect("arguments are integers")).collect();
    let me = unsafe { process_id() };
    for (index, n) in numbers.iter().enumerate() {
        let mut params = Vec::new();
        for value in [me as i64, *n, index as i64 + 1] {
            params.extend_from_slice(&param_i64(value));
        }
        let name = "sum_squares";
        let mut id = 0u64;
        let status = unsafe {
            spawn(0, -1, -1, name.as_ptr(), name.len() as u32, params.as_ptr(), params.len() as u32, &mut id)
        };
        assert_eq!(status, 0, "spawn failed");
    }
    let mut answers = vec![(0i64, 0i64); numbers.len()];
    for _ in &numbers {
        let mut buf = [0u8; 16];
        unsafe {
            assert_eq!(receive(std::ptr::null(), 0, u64::MAX), 0);
            read_data(buf.as_mut_ptr(), 16);
            let tag = get_tag() as usize; // which argument this answers
            answers[tag - 1] = (
                i64::from_le_bytes(buf[..8].try_into().unwrap()),
                i64::from_le_bytes(buf[8..].try_into().unwrap()),
            );
        }
    }
    for (n, sum) in answers {
        println!("sum of squares 1..={} = {}", n, sum);
    }
}
